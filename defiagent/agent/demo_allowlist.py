"""The demo's allowlist: one entry per deployed contract, bound to its runtime codehash.

Interim: entries are built directly here until the allowlist package's propose/approve
workflow is wired in (then reviewers sign them and `load_active_allowlist` verifies them).
"""

from __future__ import annotations

from pathlib import Path

from web3 import Web3

from defiagent.agent import scopes
from defiagent.agent.devnet import DemoMarket
from defiagent.agent.observe import codehash
from defiagent.allowlist.models import ActiveAllowlist, AllowlistEntry, Role


def build_demo_allowlist(w3: Web3, market: DemoMarket, root: Path) -> ActiveAllowlist:
    d = market.dex
    chain_id = d.chain_id

    def entry(address: str, name: str, role: Role, functions, **extra) -> AllowlistEntry:
        return AllowlistEntry(
            chain_id=chain_id,
            address=address,
            name=name,
            role=role,
            codehash=codehash(w3.eth.get_code(address).to_0x_hex()),
            functions=functions,
            **extra,
        )

    entries = [
        entry(d.router, "UniswapV2Router02", Role.ROUTER, scopes.router_functions()),
        entry(d.factory, "UniswapV2Factory", Role.FACTORY, []),
        entry(d.weth, "WETH9", Role.WRAPPED_NATIVE, scopes.weth_functions()),
        entry(d.token_a, "Demo USD (DUSD)", Role.TOKEN, scopes.token_functions()),
        entry(d.token_b, "Demo Token (DTKN)", Role.TOKEN, scopes.token_functions()),
        entry(d.pair, "UniswapV2Pair DUSD/DTKN", Role.POOL, scopes.pair_functions()),
        entry(market.weth_pair, "UniswapV2Pair WETH/DUSD", Role.POOL, scopes.pair_functions()),
    ]
    root.mkdir(parents=True, exist_ok=True)
    return ActiveAllowlist(chain_id=chain_id, entries={e.address: e for e in entries})
