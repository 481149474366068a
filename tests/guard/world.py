"""A pure, in-memory world for guard and planner tests: no chain, every value chosen."""

from __future__ import annotations

import dataclasses

from eth_utils import keccak, to_checksum_address

from defiagent.agent import scopes
from defiagent.allowlist.models import (
    ActiveAllowlist,
    AllowlistEntry,
    ProxyInfo,
    ProxyKind,
    Role,
)
from defiagent.execution.planner import Planner, ProtocolAddresses
from defiagent.guard.base import FeeQuote, GuardContext, RiskState
from defiagent.guard.guard import Guard
from defiagent.market.models import (
    MarketSnapshot,
    PoolState,
    PortfolioSnapshot,
    PriceCheck,
    TokenInfo,
)
from defiagent.market.observer import numeraire_prices

E18 = 10**18


def addr(n: int) -> str:
    return to_checksum_address(f"0x{n:040x}")


AGENT = addr(0xA6E47)
ROUTER = addr(0x7001)
WETH = addr(0x7002)
DUSD = addr(0x7003)
DTKN = addr(0x7004)
PAIR = addr(0x7005)  # DUSD/DTKN: 1 DTKN = 0.5 DUSD
WETH_PAIR = addr(0x7006)  # WETH/DUSD: 1 WETH = 2000 DUSD
STRANGER = addr(0xBAD)
CHAIN = 31337
NOW = 1_800_000_000


def codehash_of(name: str) -> str:
    return "0x" + keccak(text=name).hex()


def entry(address: str, name: str, role: Role, functions, **extra) -> AllowlistEntry:
    return AllowlistEntry(
        chain_id=CHAIN,
        address=address,
        name=name,
        role=role,
        codehash=codehash_of(name),
        functions=functions,
        **extra,
    )


def allowlist(*extra: AllowlistEntry) -> ActiveAllowlist:
    entries = [
        entry(ROUTER, "Router", Role.ROUTER, scopes.router_functions()),
        entry(WETH, "WETH9", Role.WRAPPED_NATIVE, scopes.weth_functions()),
        entry(DUSD, "DUSD", Role.TOKEN, scopes.token_functions()),
        entry(DTKN, "DTKN", Role.TOKEN, scopes.token_functions()),
        entry(PAIR, "Pair DUSD/DTKN", Role.POOL, scopes.pair_functions()),
        entry(WETH_PAIR, "Pair WETH/DUSD", Role.POOL, scopes.pair_functions()),
        *extra,
    ]
    return ActiveAllowlist(chain_id=CHAIN, entries={e.address: e for e in entries})


def proxy_entry(address: str, impl: str) -> AllowlistEntry:
    return entry(
        address,
        "Proxied token",
        Role.TOKEN,
        scopes.token_functions(),
        proxy=ProxyInfo(
            kind=ProxyKind.EIP1967, implementation=impl, implementation_codehash=codehash_of("impl")
        ),
    )


def market(*, checks_ok: bool = True, block_timestamp: int = NOW) -> MarketSnapshot:
    pools = [
        PoolState(
            address=PAIR,
            token0=DUSD,
            token1=DTKN,
            reserve0=1_000_000 * E18,
            reserve1=2_000_000 * E18,
            total_supply=1_414_213 * E18,
        ),
        PoolState(
            address=WETH_PAIR,
            token0=WETH,
            token1=DUSD,
            reserve0=100 * E18,
            reserve1=200_000 * E18,
            total_supply=4_472 * E18,
        ),
    ]
    checks = [
        PriceCheck(
            base=p.token0,
            quote=p.token1,
            spot=1.0,
            reference=1.0,
            deviation_bps=0,
            reference_age_seconds=0,
            ok=checks_ok,
            reason="" if checks_ok else "spot deviates 900 bps from the reference",
        )
        for p in pools
    ]
    return MarketSnapshot(
        chain_id=CHAIN,
        block_number=100,
        block_timestamp=block_timestamp,
        base_fee_per_gas=10**9,
        tokens={
            DUSD: TokenInfo(address=DUSD, symbol="DUSD", decimals=18),
            DTKN: TokenInfo(address=DTKN, symbol="DTKN", decimals=18),
            WETH: TokenInfo(address=WETH, symbol="WETH", decimals=18),
        },
        pools=pools,
        price_checks=checks,
        numeraire=DUSD,
    )


def portfolio(**allowances: int) -> PortfolioSnapshot:
    return PortfolioSnapshot(
        owner=AGENT,
        block_number=100,
        eth_balance=10 * E18,
        balances={DUSD: 50_000 * E18, DTKN: 100_000 * E18, WETH: 0, PAIR: 10 * E18},
        allowances={f"{t}:{ROUTER}": a for t, a in allowances.items()},
    )


def context(**overrides) -> GuardContext:
    al = overrides.pop("allowlist", None) or allowlist()
    m = overrides.pop("market", None) or market()
    base = GuardContext(
        agent=AGENT,
        chain_id=CHAIN,
        allowlist=al,
        now=NOW,
        block_number=100,
        block_timestamp=m.block_timestamp,
        codehashes={a: e.codehash for a, e in al.entries.items()},
        implementations={
            a: (e.proxy.implementation, e.proxy.implementation_codehash)
            for a, e in al.entries.items()
            if e.proxy
        },
        market=m,
        prices=numeraire_prices(m, weth=WETH),
        strategy="test",
        intents_in_window=1,
        fees=FeeQuote(base_fee_per_gas=10**9, max_priority_fee_per_gas=10**9),
        risk=RiskState(
            value_now=120_000.0,
            loss_pct_in_window=0.0,
            drawdown_pct=0.0,
            position_values={DUSD: 50_000.0, DTKN: 50_000.0, "ETH": 20_000.0},
        ),
    )
    return dataclasses.replace(base, **overrides)


def planner() -> Planner:
    return Planner(AGENT, ProtocolAddresses(router=ROUTER, weth=WETH))


def plan(intent, **allowances):
    return planner().plan(intent, market(), portfolio(**allowances))


GUARD = Guard()


def decide(call, ctx=None):
    return GUARD.decide(call, ctx or context())


def refused_by(decision) -> set[str]:
    return {v.rule for v in decision.refusals}
