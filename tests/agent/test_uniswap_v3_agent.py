"""The agent itself trades on Uniswap V3: its observer checks each listed V3 pool's spot
against the pool's observe() TWAP, its loop reads QuoterV2 on the fork between plan and
guard, and the swap is guarded, simulated, checked, signed and mined like a V2 one; a
foreign recipient is refused on the same path."""

from __future__ import annotations

import math

import pytest

from defiagent.allowlist.models import ActiveAllowlist, AllowlistEntry, Role
from defiagent.chain.rpc import JsonRpcClient
from defiagent.devchain import artifacts
from defiagent.devchain.deploy import contract
from defiagent.protocols.erc20.adapter import Erc20
from defiagent.protocols.uniswap_v3.adapter import UniswapV3
from defiagent.protocols.uniswap_v3.devnet import deploy_demo_v3
from defiagent.protocols.uniswap_v3.quoter import quote_exact_in
from defiagent.strategy.intents import SwapExactIn
from tests.agent.conftest import Scripted

pytestmark = pytest.mark.slow
E18 = 10**18
STRANGER = "0x000000000000000000000000000000000000bEEF"


@pytest.fixture(scope="module")
def v3(cw3, market):
    return deploy_demo_v3(cw3, weth=market.dex.weth, dusd=market.dusd, dtkn=market.dtkn)


@pytest.fixture(scope="module")
def v3_allowlist(cw3, allowlist, v3):
    def entry(address, name, role, functions=()) -> AllowlistEntry:
        return AllowlistEntry(
            chain_id=allowlist.chain_id,
            address=address,
            name=name,
            role=role,
            codehash=cw3.keccak(cw3.eth.get_code(address)).to_0x_hex(),
            functions=list(functions),
        )

    adapter = UniswapV3()
    extra = [
        entry(v3.router, "SwapRouter", Role.ROUTER, adapter.scope("router").functions),
        entry(v3.quoter, "QuoterV2", Role.ORACLE),
        entry(v3.factory, "UniswapV3Factory", Role.FACTORY),
        *(entry(p.address, f"UniswapV3Pool {p.fee}", Role.POOL) for p in v3.pools),
    ]
    entries = dict(allowlist.entries) | {e.address: e for e in extra}
    # The tokens' approve scope lets the SwapRouter be a spender (it is allowlisted now).
    assert all(
        e.functions == list(Erc20().scope("token").functions)
        for e in entries.values()
        if e.role is Role.TOKEN
    )
    return ActiveAllowlist(chain_id=allowlist.chain_id, entries=entries)


def with_v3(v3):
    def configure(raw: dict) -> dict:
        raw["protocols"]["uniswap-v3"] = v3.settings() | {"twap_window_seconds": 10}
        return raw

    return configure


def swap(chain, v3, market, amount: int, **kw) -> SwapExactIn:
    quoted = quote_exact_in(
        JsonRpcClient(chain.url), v3.quoter, [market.dtkn, market.dusd], [500], amount
    ).amount_out
    return SwapExactIn(
        token_in=market.dtkn,
        token_out=market.dusd,
        amount_in=amount,
        min_amount_out=math.floor(quoted * 0.995),
        venue="uniswap-v3",
        fees=[500],
        **kw,
    )


def test_the_agent_swaps_on_a_v3_pool(v3, v3_allowlist, start_agent, chain, cw3, market, signer):
    dusd = contract(cw3, artifacts.demo_token(), market.dusd).functions.balanceOf
    before = dusd(signer.address).call()
    intent = swap(chain, v3, market, 1_000 * E18)
    runtime = start_agent(
        [Scripted(intent)], allowlist_override=v3_allowlist, configure=with_v3(v3)
    )
    report = runtime.agent.tick()
    checks = {c.fee: c for c in runtime.agent.p.observer.snapshot().price_checks if c.fee}
    assert set(checks) == {500, 3000}
    assert all(c.ok for c in checks.values()), [c.reason for c in checks.values()]
    (done,) = report.intents
    assert done.status == "executed", done.refusals
    assert len(done.tx_hashes) == 2  # approve the SwapRouter, then exactInputSingle
    assert dusd(signer.address).call() - before >= intent.min_amount_out


def test_the_agent_refuses_a_v3_swap_to_a_stranger(
    v3, v3_allowlist, start_agent, chain, market, signer
):
    intent = swap(chain, v3, market, 1_000 * E18, recipient=STRANGER)
    runtime = start_agent(
        [Scripted(intent)], allowlist_override=v3_allowlist, configure=with_v3(v3)
    )
    (refused,) = runtime.agent.tick().intents
    assert refused.status == "refused"
    assert {r.rule for r in refused.refusals} == {"recipient-is-self"}
