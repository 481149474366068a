"""The backtest engine: recorded history replayed through the live pipeline's own parts.

Each tick (one recorded block where a pool changed) the engine does what the agent loop
does, with the chain replaced by the history:

    snapshot (the tick's reserves; price sanity with the same TWAP reference and limits,
    fed the pool's accumulators as the pair computes them) -> portfolio value and risk state
    (PortfolioHistory) -> stop-loss / take-profit exits (RiskDesk) -> pausing limits ->
    the strategy (the same sandboxed StrategyHost and JSON-lines protocol as `run`) ->
    each intent: rate count -> Planner -> Guard (every guard and risk rule) -> fill

The strategy is sent a snapshot built from ticks up to the one it decides on, and nothing
else: the engine never hands it the history (the data folder is hidden in its sandbox), so
lookahead is impossible by construction.

What stands in for the chain, documented in docs/backtest.md:
- code hashes: each allowlisted contract is taken to have its pinned code, except the
  recorded pools, which carry the codehash the recorder read at the range's last block;
- fork simulation: the planned calls are executed against the tick's state by exact
  Uniswap V2 integer math (`protocols/uniswap_v2/math.py`, cross-checked against anvil in
  tests): router deadline, min-out / max-in, allowance and balance checks revert as the
  contracts would, and a plan with a reverting call is refused before anything is "sent"
  (as the live simulation refuses it); the honeypot round trip is not replayed;
- gas: a fixed, measured amount per call kind (GAS_USED) at the block's recorded base fee
  plus `fees.priority_fee_per_gas`, paid in ETH;
- the agent's own trades move the pool for the rest of that tick; from the next tick on
  the recorded reserves apply again (arbitrage is assumed to undo the impact).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address
from pydantic import TypeAdapter, ValidationError

from defiagent.agent.risk_desk import PlannedExit, RiskDesk, StrategyRisk
from defiagent.agent.state import RateWindow, SpendLedger
from defiagent.agent.trade_record import build_trade
from defiagent.allowlist.models import ActiveAllowlist
from defiagent.backtest.models import BacktestMetrics, BacktestResult, BacktestTrade, TickDecision
from defiagent.config import AgentConfig
from defiagent.errors import ConfigError, DefiagentError
from defiagent.execution.models import PlannedCall
from defiagent.execution.planner import Planner
from defiagent.guard.base import FeeQuote, GuardContext, RiskState
from defiagent.guard.calldata import decode_call, selector_of
from defiagent.guard.guard import Guard
from defiagent.guard.registry import build_exit_rules, build_rules
from defiagent.guard.valuation import outflow_value
from defiagent.market.history import MarketHistory
from defiagent.market.models import (
    MarketSnapshot,
    PoolState,
    PortfolioSnapshot,
    SourceCheck,
    TokenInfo,
)
from defiagent.market.observer import numeraire_prices
from defiagent.market.sanity import PriceSanityLimits, check_sources
from defiagent.monitoring.events import TradeEvent
from defiagent.protocols.erc20.functions import APPROVE
from defiagent.protocols.uniswap_v2 import math as v2
from defiagent.protocols.uniswap_v2.functions import SWAP_EXACT_IN, SWAP_EXACT_OUT
from defiagent.protocols.uniswap_v2.twap import TwapReference
from defiagent.protocols.weth.functions import DEPOSIT, WITHDRAW
from defiagent.risk.pnl import PortfolioHistory, portfolio_value
from defiagent.risk.trades import TradeLedger
from defiagent.strategy.config import StrategyConfig
from defiagent.strategy.intents import Intent
from defiagent.strategy.protocol import HeadroomView, PositionView, Tick, to_wire

# The agent's address in a backtest: no key, no chain; only the planner and guard use it.
BACKTEST_AGENT = to_checksum_address("0x00000000000000000000000000000000000bac7e")
# Gas per call, measured on anvil with the real Uniswap V2 bytecode (tests/backtest/
# test_engine_fills_anvil.py checks each intent within 15%): swaps per hop, approve, WETH.
# A pair whose price accumulators were never written (no swap since it was made) pays for
# writing both slots from zero on its first swap, as the contract does.
GAS_USED = {
    "approve": 46_000,
    "swap_base": 40_000,
    "swap_per_hop": 52_000,
    "first_accumulator_write": 34_200,
    "deposit": 45_000,
    "withdraw": 36_000,
}
DEFAULT_START_NUMERAIRE = 10_000.0
DEFAULT_START_ETH = 1.0
_INTENT = TypeAdapter(Intent)
# Selector -> the planner's signature, for the calls the fill model executes.
_SELECTORS = {
    "0x095ea7b3": APPROVE,
    "0x38ed1739": SWAP_EXACT_IN,
    "0x8803dbee": SWAP_EXACT_OUT,
    "0xd0e30db0": DEPOSIT,
    "0x2e1a7d4d": WITHDRAW,
}


class FillRefused(Exception):
    """A planned call that would revert (or cannot be modelled): the plan is refused."""


class _WindowedHistory(PortfolioHistory):
    """PortfolioHistory with the loss window's high kept in a monotonic deque, so each tick
    costs the same however many points the window holds (the parent rescans the window;
    a day of 12-second ticks is 7,200 points per tick). Same figures as the parent."""

    def __init__(self, *, loss_window_seconds: float) -> None:
        super().__init__(loss_window_seconds=loss_window_seconds)
        self._highs: deque[tuple[float, float]] = deque()  # (t, value), values decreasing

    def record(self, t: float, value: float) -> None:
        if self.first is None:
            self.first = value
        self.peak = value if self.peak is None else max(self.peak, value)
        while self._highs and self._highs[-1][1] <= value:
            self._highs.pop()
        self._highs.append((t, value))

    def state(self, t: float, value: float | None, positions: dict[str, float] | None = None):
        while self._highs and t - self._highs[0][0] > self.loss_window:
            self._highs.popleft()
        if value is None:
            return super().state(t, value, positions)
        high = max(self._highs[0][1], value) if self._highs else value
        loss = (high - value) / high * 100 if high > 0 else 0.0
        peak = max(self.peak or value, value)
        drawdown = (peak - value) / peak * 100 if peak > 0 else 0.0
        return RiskState(
            value_now=value,
            loss_pct_in_window=loss,
            drawdown_pct=drawdown,
            position_values=positions or {},
        )


@dataclasses.dataclass
class _Book:
    """The agent's holdings in the replay: what a portfolio snapshot is read from."""

    eth: int
    balances: dict[str, int]
    allowances: dict[str, int]

    def copy(self) -> _Book:
        return _Book(self.eth, dict(self.balances), dict(self.allowances))


def pick_strategy(config: AgentConfig, name: str | None) -> StrategyConfig:
    configs = config.strategy_configs()
    if name is None:
        return configs[0]
    for sc in configs:
        if sc.name == name:
            return sc
    raise ConfigError(
        f"no strategy named {name!r} in the config (configured: "
        f"{', '.join(s.name for s in configs)})"
    )


def run_backtest(
    config: AgentConfig,
    history: MarketHistory,
    *,
    strategy: str | None = None,
    params: Mapping[str, Any] | None = None,
    start: int | None = None,
    end: int | None = None,
    warmup: int = 0,
    port: Any = None,
    allowlist: ActiveAllowlist | None = None,
) -> BacktestResult:
    """Replay `history` for one strategy of `config`.

    strategy: the name of a `[[strategies]]` entry (default the first).
    params: override that entry's params (merged over them; the sandboxed strategy is
        started with the merged params, which is what a sweep or a gate tries).
    start, end: TICK INDEXES into `history` (0-based, end exclusive, like a slice);
        `history.index_of_block(n)` turns a block number into one. Default: all of it.
    warmup: ticks before `start` the strategy is shown (it decides on them, nothing is
        traded and they are not in the figures), so its state is warm at `start`.
    port: a StrategyPort to use instead of starting the configured strategy in its
        sandbox (the in-process strategy of tests and the benchmark).
    allowlist: the active allowlist (default: read and verified from allowlist_dir).
    """
    sc = pick_strategy(config, strategy)
    if params:
        sc = sc.model_copy(update={"params": {**sc.params, **dict(params)}})
    engine = BacktestEngine(config, history, sc, allowlist=allowlist)
    own = port is None
    if own:
        port = engine.start_host()
    try:
        return engine.run(port, start=start, end=end, warmup=warmup)
    finally:
        if own:
            port.close()


class BacktestEngine:
    def __init__(
        self,
        cfg: AgentConfig,
        history: MarketHistory,
        sc: StrategyConfig,
        *,
        allowlist: ActiveAllowlist | None = None,
    ) -> None:
        if history.meta.chain_id != cfg.chain_id:
            raise ConfigError(
                f"the history {history.path} is from chain {history.meta.chain_id}, the config "
                f"is for chain {cfg.chain_id}"
            )
        if not len(history):
            raise ConfigError(f"the history {history.path} has no ticks")
        if cfg.market.numeraire is None:
            raise ConfigError(
                "config field market.numeraire is needed for a backtest: equity, caps and "
                "losses are measured in it"
            )
        self.cfg, self.h, self.sc = cfg, history, sc
        self.name = sc.name
        if allowlist is None:
            from defiagent.agent.allowlist_source import load_allowlist

            allowlist = load_allowlist(cfg.allowlist_dir, cfg.chain_id)
        self.allowlist = allowlist
        watched = cfg.market.pools or list(history.pools)
        missing = [p for p in watched if p not in history.pools]
        if missing:
            raise ConfigError(
                f"market.pools names {', '.join(missing)}, which the history does not hold; "
                "record it with `defiagent market record --pools ...`"
            )
        self.pools = [history.pools[p] for p in watched]
        self.tokens: dict[str, TokenInfo] = history.tokens
        self.numeraire: str = cfg.market.numeraire
        if self.numeraire not in self.tokens:
            raise ConfigError(
                f"the numeraire {self.numeraire} is in none of the history's pools, so nothing "
                "could be valued"
            )
        self.weth = cfg.protocols.weth
        self.router = cfg.protocols.router
        self.agent = BACKTEST_AGENT
        self.twap: TwapReference | None = None
        if "twap" in cfg.market.references:
            m = cfg.market
            self.twap = TwapReference(
                min_window_seconds=m.twap_min_window_seconds,
                max_window_seconds=m.twap_max_window_seconds,
                max_age_seconds=m.max_reference_age_seconds,
            )
        self.silent = [k for k in cfg.market.references if k != "twap"]
        self.limits = PriceSanityLimits(
            max_deviation_bps=cfg.market.max_deviation_bps,
            max_reference_age_seconds=cfg.market.max_reference_age_seconds,
            min_sources=cfg.market.min_sources,
        )
        risk = cfg.risk_for(sc)
        self.guard = Guard(build_rules(cfg.guard, risk))
        self.ledger = TradeLedger(None, numeraire=self.numeraire)
        self.desk = RiskDesk(
            {self.name: StrategyRisk(guard=self.guard, exits=build_exit_rules(risk))},
            self.ledger,
        )
        self.planner = Planner(self.agent, cfg.protocols.addresses())
        self.rate = RateWindow(cfg.guard.rate_limit.window_seconds)
        self.spend = SpendLedger(cfg.guard.window_value_cap.window_seconds)
        self.values = _WindowedHistory(
            loss_window_seconds=cfg.risk.max_daily_loss.window_hours * 3600
        )
        self.codehashes = {a: e.codehash for a, e in allowlist.entries.items()}
        self.implementations = {
            a: (e.proxy.implementation, e.proxy.implementation_codehash)
            for a, e in allowlist.entries.items()
            if e.proxy is not None
        }
        for p in history.meta.pools:
            if p.codehash:
                self.codehashes[p.address] = p.codehash
        self.priority_fee = cfg.fees.priority_fee_per_gas
        self.book = self._start_book()
        self._tokens_json: dict[str, Any] | None = None
        self._moved: dict[str, PoolState] = {}  # pools the agent's trades moved this tick

    # --- set-up ---------------------------------------------------------------------------

    def _start_book(self) -> _Book:
        wanted = dict(self.cfg.backtest.start_balances) or {
            self.numeraire: DEFAULT_START_NUMERAIRE,
            "ETH": DEFAULT_START_ETH,
        }
        eth = 0
        balances = {t: 0 for t in self.tokens}
        balances.update({p.start.address: 0 for p in self.pools})
        for key, whole in wanted.items():
            if key.upper() == "ETH":
                eth = int(whole * 10**18)
                continue
            try:
                address = to_checksum_address(key)
            except ValueError:
                raise ConfigError(
                    f"config field backtest.start_balances: {key!r} is not a token address or ETH"
                ) from None
            info = self.tokens.get(address)
            if info is None:
                raise ConfigError(
                    f"config field backtest.start_balances: {address} is in none of the "
                    "history's pools"
                )
            balances[address] = int(whole * 10**info.decimals)
        return _Book(eth=eth, balances=balances, allowances={})

    def start_host(self) -> Any:
        """The configured strategy in its sandbox, exactly as `run` starts it; the history
        folder, the state dir, the allowlist, the pins and the home dir hidden from it."""
        from defiagent.strategy.host import StrategyHost
        from defiagent.strategy.secrets import resolve_secrets

        cfg = self.cfg
        hidden = [cfg.state_dir, cfg.allowlist_dir, cfg.pins_file, Path.home()]
        if self.h.path is not None:
            hidden.append(self.h.path)
        if cfg.source is not None:
            hidden.append(cfg.source)
        hidden.append(cfg.backtest.certificates_dir)
        path = getattr(cfg.signer, "path", None)
        if isinstance(path, Path):
            hidden.append(path)
        host = StrategyHost(
            self.sc,
            secrets=resolve_secrets(self.sc),
            intent_kinds=list(cfg.guard.intent_kinds.allowed_kinds),
            hidden=[h for h in hidden if Path(h).exists()],
        )
        try:
            host.start()
        except BaseException:
            host.close()
            raise
        return host

    # --- the replay -----------------------------------------------------------------------

    def run(
        self, port: Any, *, start: int | None = None, end: int | None = None, warmup: int = 0
    ) -> BacktestResult:
        n = len(self.h)
        start = 0 if start is None else start
        end = n if end is None else end
        if not 0 <= start < end <= n:
            raise ConfigError(
                f"the tick range {start}-{end} is not within the history's 0-{n} "
                "(start inclusive, end exclusive)"
            )
        if warmup < 0:
            raise ConfigError("warmup must be 0 or more ticks")
        first = max(0, start - warmup)
        self._seed_twap(first)
        equity: list[float] = []
        exposure: list[float] = []
        decisions: list[TickDecision] = []
        trades: list[BacktestTrade] = []
        refused = 0
        strategy_seconds = strategy_cpu = 0.0
        failures, suspended_until = 0, -math.inf
        limits = port.limits
        started, started_cpu = time.perf_counter(), time.process_time()
        last_value = None
        stamps: list[int] = []
        for i in range(first, end):
            measured = i >= start
            ts = self.h.timestamps[i]
            self._moved = {}
            market, portfolio, ctx, value, positions = self._observe(i, record=measured)
            if not measured:  # warm-up: the strategy decides, nothing is traded or counted
                t0, c0 = time.perf_counter(), time.process_time()
                port.propose(self._tick(i, market, portfolio, ctx))
                strategy_seconds += time.perf_counter() - t0
                strategy_cpu += time.process_time() - c0
                continue
            tick_refusals: list[str] = []
            executed = 0
            # The agent's own exits first, as in the live loop.
            for planned in self.desk.exits(self.name, market, portfolio, ctx.prices):
                outcome = self._handle(i, planned.intent, market, portfolio, ctx, planned)
                if isinstance(outcome, BacktestTrade):
                    trades.append(outcome)
                    market, portfolio, ctx, value, positions = self._observe(i)
                else:
                    tick_refusals.append(outcome)
                    refused += 1
            sctx = self.desk.context_for(self.name, ctx)
            held = self.desk.pauses(self.name, sctx)
            raw: list[Any] = []
            notes: list[str] = []
            error = None
            if held:
                error = "paused: " + "; ".join(reason for _, reason in held)
            elif ts < suspended_until:
                error = f"paused after {failures} failed ticks"
            else:
                t0, c0 = time.perf_counter(), time.process_time()
                proposal = port.propose(self._tick(i, market, portfolio, ctx, sctx))
                strategy_seconds += time.perf_counter() - t0
                strategy_cpu += time.process_time() - c0
                if not proposal.ok:
                    error = proposal.error
                    failures += 1
                    if failures >= limits.max_failures:
                        suspended_until = ts + limits.pause_seconds
                else:
                    failures = 0
                    raw = list(proposal.intents)
                notes = list(proposal.notes)
            for item in raw:
                try:
                    intent = _INTENT.validate_python(item)
                except ValidationError as exc:
                    first_error = exc.errors()[0]
                    tick_refusals.append(f"intent-schema: {first_error['msg']}")
                    refused += 1
                    continue
                outcome = self._handle(i, intent, market, portfolio, ctx, None)
                if isinstance(outcome, BacktestTrade):
                    trades.append(outcome)
                    executed += 1
                    market, portfolio, ctx, value, positions = self._observe(i)
                else:
                    tick_refusals.append(outcome)
                    refused += 1
            if value is None:
                value = last_value  # an unpriced tick carries the last value forward
            if value is not None:
                last_value = value
                equity.append(value)
                stamps.append(ts)
                risky = sum(v for t, v in positions.items() if t not in (self.numeraire, "ETH"))
                exposure.append(risky / value if value else 0.0)
            decisions.append(
                TickDecision(
                    tick=i,
                    block=self.h.blocks[i],
                    intents=[_without_id(x) for x in raw],
                    executed=executed,
                    refused=tick_refusals,
                    error=error,
                    notes=notes,
                )
            )
        elapsed = time.perf_counter() - started
        elapsed_cpu = time.process_time() - started_cpu
        returns = [(b / a - 1.0) if a else 0.0 for a, b in itertools.pairwise(equity)]
        metrics = compute_metrics(
            equity, returns, trades, exposure, n_ticks=end - start, n_refused=refused
        )
        return BacktestResult(
            strategy=self.name,
            params=dict(self.sc.params),
            start_block=self.h.blocks[start],
            end_block=self.h.blocks[end - 1],
            start_time=self.h.timestamps[start],
            end_time=self.h.timestamps[end - 1],
            data_hash=self.h.content_hash,
            warmup=start - first,
            returns=returns,
            equity=equity,
            timestamps=stamps,
            trades=trades,
            decisions=decisions,
            metrics=metrics,
            engine_seconds=elapsed,
            strategy_seconds=strategy_seconds,
            engine_cpu_seconds=elapsed_cpu,
            strategy_cpu_seconds=strategy_cpu,
        )

    def _seed_twap(self, first: int) -> None:
        """The TWAP's window before the first replayed tick, from the history itself (live,
        the reference seeds from the chain's past the same way): independent of warm-up."""
        if self.twap is None:
            return
        ts0 = self.h.timestamps[first]
        j = first
        while j > 0 and ts0 - self.h.timestamps[j - 1] <= self.twap.max_window:
            j -= 1
        for k in range(j, first):
            for s in self.pools:
                self.twap.record(
                    s.state(k), s.cumulative0[k], s.cumulative1[k], self.h.timestamps[k]
                )

    def _observe(
        self, i: int, *, record: bool = True
    ) -> tuple[MarketSnapshot, PortfolioSnapshot, GuardContext, float | None, dict[str, float]]:
        """The tick's snapshot, portfolio, guard context and value: what `Agent._observe`
        reads from the chain, read from the history (and the agent's own trades this tick)."""
        ts, block = self.h.timestamps[i], self.h.blocks[i]
        pools = []
        checks = []
        for s in self.pools:
            pool = self._moved.get(s.start.address) or s.state(i)
            pools.append(pool)
            base, quote = s.start.token0, s.start.token1
            answers: list[SourceCheck] = []
            if self.twap is not None:
                self.twap.record(s.state(i), s.cumulative0[i], s.cumulative1[i], ts)
                answer = self.twap.read(base, quote, pool, ts)
                if answer is not None:
                    answers.append(answer)
            for kind in self.silent:
                answers.append(
                    SourceCheck(
                        source=kind,
                        kind=kind,
                        onchain=kind == "chainlink",
                        answered=False,
                        reason="not in the recorded history",
                    )
                )
            spot = None
            if pool.reserve0 and pool.reserve1:
                spot = (pool.reserve1 / 10**quote.decimals) / (pool.reserve0 / 10**base.decimals)
            checks.append(check_sources(base.address, quote.address, spot, answers, self.limits))
        fee = self.h.base_fees[i]
        market = MarketSnapshot.model_construct(
            chain_id=self.cfg.chain_id,
            block_number=block,
            block_timestamp=ts,
            base_fee_per_gas=fee,
            tokens=self.tokens,
            pools=pools,
            references=[],
            price_checks=checks,
            numeraire=self.numeraire,
        )
        b = self.book
        portfolio = PortfolioSnapshot.model_construct(
            owner=self.agent,
            block_number=block,
            eth_balance=b.eth,
            balances=dict(b.balances),
            allowances=dict(b.allowances),
        )
        prices = numeraire_prices(market, weth=self.weth)
        if "ETH" not in prices and self.cfg.backtest.eth_price is not None:
            prices["ETH"] = self.cfg.backtest.eth_price / 10**18
        if record:
            value, risk = self.values.observe(ts, market, portfolio, prices)
        else:  # warm-up: valued, never recorded, so no loss window or peak depends on it
            value, held = portfolio_value(market, portfolio, prices)
            risk = RiskState(value_now=value, position_values=held)
        positions = dict(risk.position_values)
        ctx = GuardContext(
            agent=self.agent,
            chain_id=self.cfg.chain_id,
            allowlist=self.allowlist,
            now=ts,
            block_number=block,
            block_timestamp=ts,
            codehashes=self.codehashes,
            implementations=self.implementations,
            kill_switch_on=False,
            market=market,
            prices=prices,
            fees=FeeQuote(base_fee_per_gas=fee, max_priority_fee_per_gas=self.priority_fee),
            risk=risk,
        )
        return market, portfolio, ctx, value, positions

    def _tick(
        self,
        i: int,
        market: MarketSnapshot,
        portfolio: PortfolioSnapshot,
        ctx: GuardContext,
        sctx: GuardContext | None = None,
    ) -> Tick:
        """What the strategy is sent: the same message `Agent._tick_for` builds (the JSON of
        the snapshot, big integers as strings), with the token table, which never changes
        in a replay, serialised once."""
        positions = [
            PositionView(token=x.token, amount=str(x.amount), cost=x.cost, opened_at=x.opened_at)
            for x in self.ledger.book.of(self.name)
        ]
        sctx = sctx or self.desk.context_for(self.name, ctx)
        headroom = [
            HeadroomView(rule=u.rule, used=u.used, limit=u.limit)
            for u in self.desk.usage(self.name, sctx)
        ]
        if self._tokens_json is None:
            self._tokens_json = {a: t.model_dump(mode="json") for a, t in market.tokens.items()}
        wire = {
            "chain_id": market.chain_id,
            "block_number": market.block_number,
            "block_timestamp": market.block_timestamp,
            "base_fee_per_gas": to_wire(market.base_fee_per_gas),
            "tokens": self._tokens_json,
            "pools": [to_wire(p.model_dump(mode="json")) for p in market.pools],
            "references": [r.model_dump(mode="json") for r in market.references],
            "price_checks": [c.model_dump(mode="json") for c in market.price_checks],
            "numeraire": market.numeraire,
            "swap_quotes": [q.model_dump(mode="json") for q in market.swap_quotes],
        }
        return Tick.model_construct(
            type="tick",
            tick=i,
            market=wire,
            portfolio=to_wire(portfolio.model_dump(mode="json")),
            positions=positions,
            headroom=headroom,
        )

    # --- one intent -----------------------------------------------------------------------

    def _handle(
        self,
        i: int,
        intent: Any,
        market: MarketSnapshot,
        portfolio: PortfolioSnapshot,
        base_ctx: GuardContext,
        exit: PlannedExit | None,
    ) -> BacktestTrade | str:
        """Plan, guard and fill one intent; the trade, or "rule: reason" of its refusal."""
        now = float(self.h.timestamps[i])
        count = self.rate.record(self.name, now)
        try:
            calls = self.planner.plan(intent, market, portfolio)
        except DefiagentError as exc:
            return f"planner: {exc.message}"
        ctx = dataclasses.replace(
            base_ctx,
            now=int(now),
            strategy=self.name,
            intent_kind=intent.kind,
            intents_in_window=count,
            spent_in_window=self.spend.spent(now),
            position_exit=exit.rule if exit else "",
        )
        ctx = self.desk.context_for(self.name, ctx)
        for call in calls:
            decision = self.guard.decide(call, ctx)
            if not decision.allowed:
                bad = next(v for v in decision.verdicts if not v.allowed)
                return f"{bad.rule}: {bad.reason}"
        before = self.book
        try:
            after, moved, gas_used, gas_wei = self._fill(calls, market, before, i)
        except FillRefused as exc:
            return f"simulation: {exc}"
        self.book = after
        self._moved.update(moved)
        for call in calls:
            self.spend.add(now, outflow_value(call, ctx.prices)[0])
        after_snapshot = PortfolioSnapshot.model_construct(
            owner=self.agent,
            block_number=market.block_number,
            eth_balance=after.eth + gas_wei,  # gas is not a trade: build_trade adds it back
            balances=dict(after.balances),
            allowances=dict(after.allowances),
        )
        event = build_trade(
            rpc=None,  # type: ignore[arg-type]  # no receipts: gas is modelled below
            at=now,
            strategy=self.name,
            intent=intent,
            tx_hashes=[],
            market=market,
            before=portfolio,
            after=after_snapshot,
            prices=ctx.prices,
            portfolio_value=ctx.risk.value_now,
            exit_reason=exit.rule if exit else None,
        )
        eth_price = ctx.prices.get("ETH")
        event = event.model_copy(
            update={
                "gas_used": gas_used,
                "gas_cost_wei": gas_wei,
                "gas_cost_value": gas_wei * eth_price if eth_price is not None else None,
            }
        )
        event = self.ledger.add(event)
        return _trade(i, market, event, intent.reason)

    def _fill(
        self, calls: Sequence[PlannedCall], market: MarketSnapshot, book: _Book, i: int
    ) -> tuple[_Book, dict[str, PoolState], int, int]:
        """Run the plan's calls on a copy of the state, as the contracts would; FillRefused
        with the revert reason when one would revert (nothing is applied then)."""
        b = book.copy()
        pools = {p.address: p for p in market.pools}
        moved: dict[str, PoolState] = {}
        gas_price = self.h.base_fees[i] + self.priority_fee
        ts = self.h.timestamps[i]
        gas_total = 0
        for call in calls:
            try:
                selector = selector_of(call.data)
            except Exception:
                raise FillRefused("the call has no function selector") from None
            signature = _SELECTORS.get(selector)
            if signature is None:
                raise FillRefused(
                    f"the backtest cannot fill {call.description or selector} (it models "
                    "swaps, approvals, wrap and unwrap)"
                )
            args = decode_call(signature, call.data).args
            if call.value and signature != DEPOSIT:
                raise FillRefused("a call that sends ETH to a non-payable function reverts")
            if signature == APPROVE:
                b.allowances[f"{call.target}:{args['spender']}"] = args["amount"]
                gas = GAS_USED["approve"]
            elif signature == DEPOSIT:
                if call.target != self.weth:
                    raise FillRefused(f"{call.target} is not the configured WETH")
                if b.eth < call.value:
                    raise FillRefused("not enough ETH to wrap")
                b.eth -= call.value
                b.balances[self.weth] = b.balances.get(self.weth, 0) + call.value
                gas = GAS_USED["deposit"]
            elif signature == WITHDRAW:
                if call.target != self.weth:
                    raise FillRefused(f"{call.target} is not the configured WETH")
                wad = args["wad"]
                if b.balances.get(self.weth, 0) < wad:
                    raise FillRefused("not enough WETH to unwrap")
                b.balances[self.weth] -= wad
                b.eth += wad
                gas = GAS_USED["withdraw"]
            else:
                if call.target != self.router:
                    raise FillRefused(f"{call.target} is not the configured router")
                gas = self._swap(signature, args, pools, moved, b, ts, i)
            cost = gas * gas_price
            if b.eth < cost:
                raise FillRefused("not enough ETH to pay for gas")
            b.eth -= cost
            gas_total += gas
        return b, moved, gas_total, gas_total * gas_price

    def _swap(
        self,
        signature: str,
        args: dict[str, Any],
        pools: dict[str, PoolState],
        moved: dict[str, PoolState],
        b: _Book,
        ts: int,
        i: int,
    ) -> int:
        """One router swap by UniswapV2Library's integer math, hop by hop."""
        path = [to_checksum_address(a) for a in args["path"]]
        if args["deadline"] < ts:
            raise FillRefused("UniswapV2Router: EXPIRED")
        if len(path) < 2:
            raise FillRefused("UniswapV2Library: INVALID_PATH")
        hops = []
        for a, c in itertools.pairwise(path):
            pool = next((p for p in pools.values() if p.has(a) and p.has(c) and a != c), None)
            if pool is None:
                raise FillRefused(f"no recorded pool for the hop {a} -> {c}")
            hops.append(pool)
        try:
            if signature == SWAP_EXACT_IN:
                amounts = [args["amountIn"]]
                for a, pool in zip(path, hops, strict=False):
                    r_in, r_out = pool.reserves_for(a)
                    amounts.append(v2.get_amount_out(amounts[-1], r_in, r_out))
                if amounts[-1] < args["amountOutMin"]:
                    raise FillRefused("UniswapV2Router: INSUFFICIENT_OUTPUT_AMOUNT")
            else:
                amounts = [args["amountOut"]]
                for c, pool in zip(reversed(path), reversed(hops), strict=False):
                    r_out, r_in = pool.reserves_for(c)
                    amounts.insert(0, v2.get_amount_in(amounts[0], r_in, r_out))
                if amounts[0] > args["amountInMax"]:
                    raise FillRefused("UniswapV2Router: EXCESSIVE_INPUT_AMOUNT")
        except ValueError as exc:  # an empty pool, or more out than it holds
            raise FillRefused(f"UniswapV2Library: {exc}") from None
        token_in, amount_in = path[0], amounts[0]
        key = f"{token_in}:{self.router}"
        if b.allowances.get(key, 0) < amount_in or b.balances.get(token_in, 0) < amount_in:
            raise FillRefused("TransferHelper: TRANSFER_FROM_FAILED")
        if b.allowances[key] < 2**256 - 1:  # OpenZeppelin keeps an unlimited allowance
            b.allowances[key] -= amount_in
        b.balances[token_in] -= amount_in
        for k, (a, pool) in enumerate(zip(path, hops, strict=False)):
            r_in, r_out = pool.reserves_for(a)
            r_in, r_out = r_in + amounts[k], r_out - amounts[k + 1]
            r0, r1 = (r_in, r_out) if a == pool.token0 else (r_out, r_in)
            new = pool.model_copy(update={"reserve0": r0, "reserve1": r1})
            pools[pool.address] = moved[pool.address] = new
        to = to_checksum_address(args["to"])
        if to == self.agent:
            b.balances[path[-1]] = b.balances.get(path[-1], 0) + amounts[-1]
        gas = GAS_USED["swap_base"] + GAS_USED["swap_per_hop"] * len(hops)
        for pool in hops:
            s = self.h.pools.get(pool.address)
            fresh = s is not None and s.cumulative0[i] == 0 and s.cumulative1[i] == 0
            if fresh and ts % 2**32 != pool.block_timestamp_last:
                gas += GAS_USED["first_accumulator_write"]
        return gas


def _without_id(item: Any) -> Any:
    """An intent as the strategy emitted it, minus its id (often random: two runs that
    decide the same would otherwise differ), as JSON."""
    if isinstance(item, dict):
        return to_wire({k: v for k, v in item.items() if k != "id"})
    return to_wire(item)


def _trade(i: int, market: MarketSnapshot, e: TradeEvent, reason: str) -> BacktestTrade:
    return BacktestTrade(
        tick=i,
        block=market.block_number,
        timestamp=market.block_timestamp,
        strategy=e.strategy,
        kind=e.kind,
        token_in=e.token_in or "",
        token_out=e.token_out or "",
        amount_in=e.amount_in,
        amount_out=e.amount_out,
        value_in=e.value_in,
        value_out=e.value_out,
        gas_used=e.gas_used,
        gas_cost=e.gas_cost_value or 0.0,
        slippage_bps=e.slippage_bps,
        realized_pnl=e.realized_pnl,
        exit_rule=e.exit_reason,
        portfolio_value=e.portfolio_value,
        reason=reason,
    )


# --- figures ---------------------------------------------------------------------------------


def compute_metrics(
    equity: Sequence[float],
    returns: Sequence[float],
    trades: Sequence[BacktestTrade],
    exposure: Sequence[float],
    *,
    n_ticks: int,
    n_refused: int = 0,
) -> BacktestMetrics:
    """Per-tick Sharpe (mean / sample stdev) and Sortino (mean / downside deviation),
    maximum drawdown, turnover (traded value / mean equity), win rate of closing trades,
    mean exposure (share of equity outside the numeraire and ETH)."""
    n = len(returns)
    mean = sum(returns) / n if n else 0.0
    var = sum((r - mean) ** 2 for r in returns) / (n - 1) if n > 1 else 0.0
    sd = math.sqrt(var)
    down = math.sqrt(sum(min(r, 0.0) ** 2 for r in returns) / n) if n else 0.0
    peak, mdd = -math.inf, 0.0
    for v in equity:
        peak = max(peak, v)
        if peak > 0:
            mdd = max(mdd, (peak - v) / peak)
    traded = sum(t.value_in or 0.0 for t in trades)
    mean_equity = sum(equity) / len(equity) if equity else 0.0
    closes = [t.realized_pnl for t in trades if t.realized_pnl is not None]
    return BacktestMetrics(
        sharpe=mean / sd if sd > 0 else 0.0,
        sortino=mean / down if down > 0 else 0.0,
        max_drawdown=mdd,
        turnover=traded / mean_equity if mean_equity else 0.0,
        win_rate=sum(1 for p in closes if p > 0) / len(closes) if closes else 0.0,
        exposure=sum(exposure) / len(exposure) if exposure else 0.0,
        total_return=(equity[-1] / equity[0] - 1.0) if equity and equity[0] else 0.0,
        n_ticks=n_ticks,
        n_trades=len(trades),
        n_refused=n_refused,
        gas_cost=sum(t.gas_cost for t in trades),
    )
