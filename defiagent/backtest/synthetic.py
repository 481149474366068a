"""A synthetic market for tests and the benchmark: no chain, exact same format as a recording.

Two Uniswap V2 pools like the demo's (DTKN/DUSD and WETH/DUSD), a DTKN price that follows
a mean-reverting random walk with an optional planted edge, the allowlist entries the
vetting workflow would produce for them (code hashes are made up: the backtest supplies
pinned code hashes itself), and a config for the built-in mean-reversion strategy.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

from eth_utils import keccak, to_checksum_address

from defiagent.agent import scopes
from defiagent.allowlist.models import ActiveAllowlist, AllowlistEntry, Role
from defiagent.config import AgentConfig, parse_config
from defiagent.market.history import HistoryMeta, MarketHistory, PoolStart, TickRow, build_history
from defiagent.market.models import TokenInfo

UNIT = 10**18
CHAIN_ID = 31337


def _address(label: str) -> str:
    return to_checksum_address("0x" + keccak(text=label).hex()[-40:])


DUSD = _address("synthetic DUSD")
DTKN = _address("synthetic DTKN")
WETH = _address("synthetic WETH")
ROUTER = _address("synthetic router")
FACTORY = _address("synthetic factory")
PAIR = _address("synthetic DTKN/DUSD pair")
WETH_PAIR = _address("synthetic WETH/DUSD pair")


def _ordered(a: TokenInfo, b: TokenInfo) -> tuple[TokenInfo, TokenInfo]:
    return (a, b) if int(a.address, 16) < int(b.address, 16) else (b, a)


def synthetic_history(
    ticks: int,
    *,
    seed: int = 1,
    block_time: int = 12,
    volatility_bps: float = 60.0,
    reversion: float = 0.05,
    depth_dusd: int = 1_000_000,
    prices: list[float] | None = None,
) -> MarketHistory:
    """`ticks` blocks where the DTKN/DUSD pool moves each block (the WETH pool every 50th).
    The log price reverts towards 0.5 DUSD by `reversion` per tick, plus Gaussian noise;
    or, given `prices`, DTKN's price in DUSD at each tick exactly."""
    rng = random.Random(seed)  # noqa: S311 - a simulated market, not security
    dusd = TokenInfo(address=DUSD, symbol="DUSD", decimals=18)
    dtkn = TokenInfo(address=DTKN, symbol="DTKN", decimals=18)
    weth = TokenInfo(address=WETH, symbol="WETH", decimals=18)
    p0, p1 = _ordered(dtkn, dusd)
    w0, w1 = _ordered(weth, dusd)
    t0 = 1_700_000_000

    def pair_reserves(
        first: TokenInfo, base: TokenInfo, price: float, depth: int
    ) -> tuple[int, int]:
        r_quote = depth * UNIT
        r_base = int(depth / price * UNIT)
        return (r_base, r_quote) if first is base else (r_quote, r_base)

    r0, r1 = pair_reserves(p0, dtkn, 0.5, depth_dusd)
    q0, q1 = pair_reserves(w0, weth, 2000.0, depth_dusd)
    starts = [
        PoolStart(
            address=PAIR,
            token0=p0,
            token1=p1,
            reserve0=r0,
            reserve1=r1,
            timestamp_last=t0 - block_time,
            cumulative0=0,
            cumulative1=0,
            total_supply=10**24,
        ),
        PoolStart(
            address=WETH_PAIR,
            token0=w0,
            token1=w1,
            reserve0=q0,
            reserve1=q1,
            timestamp_last=t0 - block_time,
            cumulative0=0,
            cumulative1=0,
            total_supply=10**22,
        ),
    ]
    rows = []
    log_price = math.log(0.5)
    eth_log = math.log(2000.0)
    for n in range(ticks):
        block, ts = 100 + n, t0 + n * block_time
        fee = 10**9 + rng.randrange(10**9)
        log_price += -reversion * (log_price - math.log(0.5)) + rng.gauss(0, volatility_bps / 1e4)
        if prices is not None:
            log_price = math.log(prices[n])
        a, b = pair_reserves(p0, dtkn, math.exp(log_price), depth_dusd)
        rows.append(
            TickRow(block=block, timestamp=ts, base_fee=fee, pool=PAIR, reserve0=a, reserve1=b)
        )
        if n % 50 == 0:
            eth_log += rng.gauss(0, 0.002)
            a, b = pair_reserves(w0, weth, math.exp(eth_log), depth_dusd)
            rows.append(
                TickRow(
                    block=block, timestamp=ts, base_fee=fee, pool=WETH_PAIR, reserve0=a, reserve1=b
                )
            )
    meta = HistoryMeta(
        chain_id=CHAIN_ID,
        source="chain",
        from_block=100,
        to_block=100 + max(ticks - 1, 0),
        pools=starts,
        note=f"synthetic (seed {seed})",
    )
    return build_history(meta, rows)


def synthetic_allowlist() -> ActiveAllowlist:
    def entry(address: str, name: str, role: Role, functions: list[Any]) -> AllowlistEntry:
        return AllowlistEntry(
            chain_id=CHAIN_ID,
            address=address,
            name=name,
            role=role,
            codehash="0x" + keccak(text=f"code of {name}").hex(),
            functions=functions,
        )

    entries = [
        entry(ROUTER, "UniswapV2Router02", Role.ROUTER, scopes.router_functions()),
        entry(FACTORY, "UniswapV2Factory", Role.FACTORY, []),
        entry(WETH, "WETH9", Role.WRAPPED_NATIVE, scopes.weth_functions()),
        entry(DUSD, "Demo USD (DUSD)", Role.TOKEN, scopes.token_functions()),
        entry(DTKN, "Demo Token (DTKN)", Role.TOKEN, scopes.token_functions()),
        entry(PAIR, "UniswapV2Pair DTKN/DUSD", Role.POOL, scopes.pair_functions()),
        entry(WETH_PAIR, "UniswapV2Pair WETH/DUSD", Role.POOL, scopes.pair_functions()),
    ]
    return ActiveAllowlist(chain_id=CHAIN_ID, entries={e.address: e for e in entries})


def synthetic_config(
    workdir: Path, *, params: dict[str, Any] | None = None, **top: Any
) -> AgentConfig:
    """An agent config for the synthetic market, one strategy: the built-in mean reversion."""
    data: dict[str, Any] = {
        "rpc_url": "http://127.0.0.1:8545",
        "chain_id": CHAIN_ID,
        "allowlist_dir": str(workdir / "allowlist"),
        "state_dir": str(workdir / "state"),
        "protocols": {"router": ROUTER, "weth": WETH, "factory": FACTORY},
        "market": {"numeraire": DUSD, "twap_min_window_seconds": 60, "max_deviation_bps": 500},
        "guard": {
            "per_tx_value_cap": {"max_value": 5_000},
            "window_value_cap": {"max_value": 10**9, "window_seconds": 86_400},
            "rate_limit": {"max_intents": 100, "window_seconds": 60},
            "slippage": {"max_slippage_bps": 100},
        },
        "signer": {"backend": "keystore", "path": str(workdir / "agent.json")},
        "strategies": [
            {
                "name": "mean-reversion",
                "builtin": "mean-reversion",
                "params": {
                    "base": DTKN,
                    "quote": DUSD,
                    "window": 20,
                    "threshold_bps": 150,
                    "trade_size_quote": str(500 * UNIT),
                    "slippage_bps": 50,
                    **(params or {}),
                },
            }
        ],
        "backtest": {
            "start_balances": {DUSD: 20_000, DTKN: 40_000, "ETH": 2},
            "certificates_dir": str(workdir / "backtest-certificates"),
        },
        "pins_file": str(workdir / "strategy-pins.json"),
    }
    data.update(top)
    return parse_config(data)
