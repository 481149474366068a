"""Helpers for the backtest tests: a local market made by scripted traders, its allowlist,
and an agent config for the mean-reversion strategy on it (no Slither: only the result of
the vetting workflow matters here, as in tests/agent/conftest.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from web3 import Web3

from defiagent.agent import scopes
from defiagent.agent.demo import demo_config
from defiagent.agent.devnet import UNIT, DemoMarket, MarketNoise
from defiagent.agent.observe import codehash
from defiagent.allowlist.models import ActiveAllowlist, AllowlistEntry, Role
from defiagent.config import AgentConfig, parse_config


def market_allowlist(w3: Web3, market: DemoMarket) -> ActiveAllowlist:
    d = market.dex

    def entry(address: str, name: str, role: Role, functions: list) -> AllowlistEntry:
        return AllowlistEntry(
            chain_id=d.chain_id,
            address=address,
            name=name,
            role=role,
            codehash=codehash(w3.eth.get_code(address).to_0x_hex()),
            functions=functions,
        )

    assert d.pair is not None
    entries = [
        entry(d.router, "UniswapV2Router02", Role.ROUTER, scopes.router_functions()),
        entry(d.factory, "UniswapV2Factory", Role.FACTORY, []),
        entry(d.weth, "WETH9", Role.WRAPPED_NATIVE, scopes.weth_functions()),
        entry(d.token_a, "Demo USD (DUSD)", Role.TOKEN, scopes.token_functions()),
        entry(d.token_b, "Demo Token (DTKN)", Role.TOKEN, scopes.token_functions()),
        entry(d.pair, "UniswapV2Pair DUSD/DTKN", Role.POOL, scopes.pair_functions()),
        entry(market.weth_pair, "UniswapV2Pair WETH/DUSD", Role.POOL, scopes.pair_functions()),
    ]
    return ActiveAllowlist(chain_id=d.chain_id, entries={e.address: e for e in entries})


def mean_reversion_params(market: DemoMarket, **over: Any) -> dict[str, Any]:
    return {
        "base": market.dtkn,
        "quote": market.dusd,
        "window": 4,
        "threshold_bps": 40,
        "trade_size_quote": str(500 * UNIT),
        "slippage_bps": 50,
        **over,
    }


def backtest_config(
    market: DemoMarket,
    rpc_url: str,
    workdir: Path,
    *,
    strategies: list[dict] | None = None,
    **top: Any,
) -> AgentConfig:
    table = {"backend": "keystore", "path": str(workdir / "agent.json"), "password_env": "UNUSED"}
    cfg = demo_config(market, rpc_url=rpc_url, workdir=workdir, signer_table=table)
    data = cfg.model_dump(mode="json")
    data.pop("strategy", None)
    data["strategies"] = strategies or [
        {
            "name": "mean-reversion",
            "builtin": "mean-reversion",
            "params": mean_reversion_params(market),
        }
    ]
    data["backtest"] = {
        "start_balances": {market.dusd: 20_000, market.dtkn: 40_000, "ETH": 2},
        "certificates_dir": str(workdir / "backtest-certificates"),
    }
    data.update(top)
    return parse_config(data)


def make_history(w3: Web3, market: DemoMarket, steps: int, seed: int = 7) -> tuple[int, int]:
    """Scripted traders move the pool for `steps` blocks; (first, last) block they made."""
    noise = MarketNoise(w3, market, seed=seed, min_pct=0.2, max_pct=1.5)
    first = w3.eth.block_number + 1
    for _ in range(steps):
        noise.step()
    return first, w3.eth.block_number


def history_rows(history: Any) -> list:
    """The rows that make `history` again (for writing a synthetic one to a folder)."""
    from defiagent.market.history import TickRow

    rows = []
    for i, block in enumerate(history.blocks):
        for address, s in history.pools.items():
            if i == 0 or (s.reserve0[i], s.reserve1[i]) != (s.reserve0[i - 1], s.reserve1[i - 1]):
                rows.append(
                    TickRow(block=block, timestamp=history.timestamps[i],
                            base_fee=history.base_fees[i], pool=address,
                            reserve0=s.reserve0[i], reserve1=s.reserve1[i])
                )  # fmt: skip
    return rows
