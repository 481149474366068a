"""The agent loop. Each tick:

    kill switch? -> market + portfolio snapshot -> code hashes and fees (read here, outside
    the guard) -> each strategy (a sandboxed child, sent a JSON copy of the snapshot)
    proposes intents, parsed strictly -> for each intent: rate count -> plan ->
    guard every call -> simulate the whole plan on the fork -> outcome checks -> for each
    call: (re-simulate on the latest state if an earlier call of the plan was just mined)
    -> execute (the executor checks the kill switch before signing and before sending)

Every step goes to the audit log and the metrics. Anything that cannot be established
(an RPC error, a simulation that cannot run, a strategy that crashes, times out or answers
garbage) ends in a refusal with a reason, never in a transaction; a strategy that fails
`max_failures` ticks in a row is paused for `pause_seconds`. Nothing a strategy sends can
stop the loop: an unexpected error while handling one intent refuses that intent.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address
from pydantic import TypeAdapter, ValidationError
from web3 import Web3

from defiagent.agent.observe import drifted_entries, observe_code, pinned_code_problem
from defiagent.agent.ports import CallExecutor, ExecutionResult, StrategyPort
from defiagent.agent.reports import IntentReport, Refusal, TickReport, refusals_of
from defiagent.agent.risk_desk import PlannedExit, RiskDesk, StrategyRisk
from defiagent.agent.state import RateWindow, SpendLedger
from defiagent.agent.trade_record import build_trade
from defiagent.allowlist.models import ActiveAllowlist
from defiagent.decisions import Decision
from defiagent.errors import DefiagentError, InfraError
from defiagent.execution.models import PlannedCall
from defiagent.execution.planner import Planner
from defiagent.guard.base import FeeQuote, GuardContext
from defiagent.guard.guard import Guard
from defiagent.guard.registry import build_exit_rules, by_id
from defiagent.guard.touched import TouchedCodePinned
from defiagent.guard.valuation import outflow_value
from defiagent.market.models import MarketSnapshot, PortfolioSnapshot
from defiagent.market.observer import MarketObserver, numeraire_prices
from defiagent.monitoring.auto_kill import AutoKill
from defiagent.monitoring.events import RISK, TRADE, LimitUsage
from defiagent.monitoring.interfaces import (
    Alert,
    AlertKind,
    AlertSeverity,
    AlertSink,
    AuditSink,
    KillSwitchState,
    NullAlertSink,
)
from defiagent.monitoring.metrics import AgentMetrics
from defiagent.protocols.quoting import needs_prequotes, with_prequotes
from defiagent.risk.pnl import PortfolioHistory
from defiagent.risk.trades import TradeLedger, moved_assets
from defiagent.simulation.batch import BatchRpcClient
from defiagent.simulation.checks import CheckContext, RoundTripConfig, run_checks
from defiagent.simulation.models import SimulationOutcome
from defiagent.simulation.requote import RULE as REQUOTE
from defiagent.simulation.requote import requote_problem
from defiagent.simulation.round_trip import check_plan_round_trip
from defiagent.simulation.simulator import Simulator
from defiagent.strategy.host import Proposal
from defiagent.strategy.intents import Approve, Intent
from defiagent.strategy.protocol import HeadroomView, PositionView, Tick, to_wire

MAX_INTENTS_PER_TICK = 200  # beyond this a strategy's surplus is dropped unread
_INTENT = TypeAdapter(Intent)


@dataclasses.dataclass
class AgentParts:
    """Everything the loop uses, built by `defiagent.agent.build` (or a test)."""

    agent: str
    chain_id: int
    rpc: BatchRpcClient  # the chain the agent reads (and the executor sends to)
    allowlist: ActiveAllowlist
    strategies: Sequence[StrategyPort]  # names fixed by the config, never by the strategy
    observer: MarketObserver
    planner: Planner
    guard: Guard
    simulator: Simulator
    executor: CallExecutor
    audit: AuditSink
    kill_switch: KillSwitchState
    metrics: AgentMetrics
    weth: str
    rate_window_seconds: float = 60
    spend_window_seconds: float = 86_400
    loss_window_seconds: float = 86_400
    max_gas_per_tx: int = 1_000_000
    share_tolerance_bps: int = 10  # [simulation]: ERC-4626 shares vs the vault's preview
    priority_fee_per_gas: int = 10**9
    spenders: Sequence[str] = ()
    state_dir: Path | None = None  # where the spend ledger and portfolio history persist
    clock: Callable[[], float] = time.time
    # Each strategy's own rules ([risk] with its overrides); default: `guard` for all.
    strategy_risk: dict[str, StrategyRisk] = dataclasses.field(default_factory=dict)
    alerts: AlertSink = dataclasses.field(default_factory=NullAlertSink)
    auto_kill: AutoKill | None = None
    drift: dict[str, Any] = dataclasses.field(default_factory=dict)  # strategy -> DriftMonitor
    pins: dict[str, str] = dataclasses.field(default_factory=dict)  # strategy -> its pin id
    quorum: Any = None  # a ProviderQuorum: other providers must agree each tick
    # [guard.honeypot]: the round trip every buy must survive on the fork before it is sent
    round_trip: RoundTripConfig = dataclasses.field(default_factory=RoundTripConfig)
    requote_max_bps: float = 100.0  # the slippage bound: fork price vs the snapshot's quote
    # [safe]: a defiagent.safe.batch.SafeExecution. `agent` is then the Safe (it holds the
    # funds); each guarded plan goes out as one transaction of the agent's key to the guard.
    safe: Any = None
    # Prices of what the protocols issue (vault shares), from the tick's token prices and
    # the chain at its block; None when no protocol issues any.
    token_prices: Callable[[int, Mapping[str, float]], Mapping[str, float]] | None = None


class Agent:
    def __init__(self, parts: AgentParts) -> None:
        self.p = parts
        self._fork_w3: Web3 | None = None  # the fork, for quotes read before the guard
        self.rate = RateWindow(parts.rate_window_seconds)
        d = parts.state_dir
        self.spend = SpendLedger(parts.spend_window_seconds, d / "spend.jsonl" if d else None)
        self.history = PortfolioHistory(
            loss_window_seconds=parts.loss_window_seconds,
            path=d / "portfolio.jsonl" if d else None,
        )
        self.ledger = TradeLedger(
            d / "trades.jsonl" if d else None, numeraire=parts.observer.numeraire
        )
        risk = dict(parts.strategy_risk)
        for s in parts.strategies:
            risk.setdefault(s.name, StrategyRisk(guard=parts.guard, exits=build_exit_rules()))
        self.desk = RiskDesk(risk, self.ledger)
        for monitor_strategy, monitor in parts.drift.items():
            for trade in self.ledger.trades:
                if trade.strategy == monitor_strategy and moved_assets(trade):
                    monitor.observe(trade)
        self.paused: dict[str, str] = {}
        # Approvals mined for a plan whose later call was then refused or failed: revoked
        # through the guarded path before anything else (strategy, intent id, token, spender).
        self._left_approvals: list[tuple[str, str, str, str]] = []
        self.failures: dict[str, int] = {}  # failed ticks in a row, per strategy
        self.suspended: dict[str, float] = {}  # strategy -> paused until (clock) after failures
        self._drifting: set[tuple[str, str]] = set()
        self.tick_no = 0
        self._kill_seen: bool | None = None

    def warm_up(self) -> None:
        """Read the market once without trading, so price references have a first point.
        A read that fails here is recorded; the ticks that follow skip until it works."""
        try:
            self._observe()
        except DefiagentError as exc:
            self.p.audit.record("warm-up", {"agent": self.p.agent, "failed": str(exc)})
            return
        self.p.audit.record("warm-up", {"agent": self.p.agent})

    # --- one tick ------------------------------------------------------------------------

    def tick(self) -> TickReport:
        self.tick_no += 1
        p = self.p
        with p.metrics.time("tick"):
            self._watch_kill_switch()
            if p.kill_switch.is_on():
                p.audit.record("tick-skipped", {"tick": self.tick_no, "reason": "kill switch on"})
                p.metrics.ticks.labels(outcome="kill-switch").inc()
                return TickReport(tick=self.tick_no, skipped="the kill switch is on")
            try:
                settle = getattr(p.executor, "settle", None)
                settled = settle() if callable(settle) else []
                if settled:
                    p.audit.record("reconciled", {"tick": self.tick_no, "entries": settled})
                with p.metrics.time("snapshot"):
                    market, portfolio, base_ctx = self._observe()
            except DefiagentError as exc:
                p.audit.record("tick-skipped", {"tick": self.tick_no, "reason": str(exc)})
                p.metrics.ticks.labels(outcome="infra-error").inc()
                return TickReport(tick=self.tick_no, skipped=str(exc))
            self._review_risk(market, base_ctx)
            reports: list[IntentReport] = []
            # [market, portfolio, ctx], replaced in place when an executed intent moves them
            state: list[Any] = [market, portfolio, base_ctx]

            def run(strategy: str, intent: Any, exit: PlannedExit | None = None) -> bool:
                """Handle one intent; False when the tick must stop (state unreadable)."""
                m, pf, ctx = state
                report = self._handle_safely(strategy, intent, m, pf, ctx, exit=exit)
                reports.append(report)
                if report.status != "executed":
                    return self._revoke_left_approvals(state, reports)
                if not self._reobserve(state):  # state moved: read it again
                    return False
                self._record_trade(strategy, intent, report, m, pf, ctx, state[1], exit)
                return True

            going = True
            for name in self.desk.strategies:  # the agent's own exits come first
                for planned in self.desk.exits(name, market, portfolio, base_ctx.prices):
                    if going:
                        p.audit.record(
                            "position-exit",
                            {"strategy": name, "rule": planned.rule, "reason": planned.reason},
                        )
                        going = run(name, planned.intent, planned)
            for strategy in p.strategies if going else ():
                if strategy.name in self.paused or self._suspended(strategy.name):
                    continue
                m, pf, ctx = state
                for intent in self._ask(strategy, m, pf, ctx, reports):
                    if not run(strategy.name, intent):
                        break
            market, _, base_ctx = state
            p.metrics.ticks.labels(outcome="ok").inc()
            paused = dict(self.paused)
            for name, until in self.suspended.items():
                paused.setdefault(
                    name,
                    f"failed {self.failures.get(name, 0)} ticks in a row; paused until "
                    f"{time.strftime('%H:%M:%S', time.localtime(until))}",
                )
            return TickReport(
                tick=self.tick_no,
                block=market.block_number,
                portfolio_value=base_ctx.risk.value_now,
                spot_prices=self._spots(market),
                intents=reports,
                paused=paused,
            )

    # --- risk, alerts and the automatic kill switch ---------------------------------------

    def alert(self, kind: AlertKind, severity: AlertSeverity, title: str, **kw: Any) -> None:
        self.p.alerts.send(
            Alert(kind=kind, severity=severity, title=title, agent=self.p.agent, **kw)
        )

    def _watch_kill_switch(self) -> None:
        """Alert when the kill switch changed since the last tick (by hand or by a trip)."""
        p = self.p
        on = p.kill_switch.is_on()
        p.metrics.kill_switch.set(1 if on else 0)
        if self._kill_seen is not None and on != self._kill_seen:
            status = getattr(p.kill_switch, "status", None)
            st = status() if callable(status) else None
            by = getattr(st, "changed_by", "") or ""
            if by != "auto-kill":  # an automatic trip already alerted, with its reason
                self.alert(
                    AlertKind.KILL_SWITCH,
                    AlertSeverity.CRITICAL if on else AlertSeverity.WARNING,
                    f"kill switch turned {'on' if on else 'off'}",
                    detail=getattr(st, "reason", "") or "",
                    data={"on": on, "changed_by": by},
                )
        self._kill_seen = on

    def _review_risk(self, market: MarketSnapshot, ctx: GuardContext) -> None:
        """Pauses, code drift, limit usage and drift, once per tick; records the picture."""
        p = self.p
        drifted = drifted_entries(p.allowlist, ctx.codehashes, ctx.implementations)
        if drifted:
            reason = f"the code of {', '.join(drifted)} no longer matches the allowlist"
            self.alert(
                AlertKind.ALLOWLIST,
                AlertSeverity.CRITICAL,
                "allowlist verification failed",
                detail=reason,
            )
            if p.auto_kill:
                p.auto_kill.allowlist_failure(reason)
        paused: dict[str, str] = {}
        limits: dict[str, LimitUsage] = {}  # per rule, the most used across strategies
        for name in self.desk.strategies:
            sctx = self.desk.context_for(name, ctx)
            held = self.desk.pauses(name, sctx)
            p.metrics.strategy_paused.labels(strategy=name).set(1 if held else 0)
            for u in self.desk.usage(name, sctx):
                if u.rule not in limits or u.ratio > limits[u.rule].ratio:
                    limits[u.rule] = u
            if not held:
                if name in self.paused:
                    p.audit.record("strategy-resumed", {"strategy": name})
                continue
            paused[name] = "; ".join(reason for _, reason in held)
            if name not in self.paused:
                p.audit.record(
                    "strategy-paused",
                    {"strategy": name, "rules": [r for r, _ in held], "reason": paused[name]},
                )
                self.alert(
                    AlertKind.LIMIT_BREACH,
                    AlertSeverity.WARNING,
                    f"strategy {name} paused by {', '.join(r for r, _ in held)}",
                    detail=paused[name],
                    strategy=name,
                    data={"rules": [r for r, _ in held]},
                )
                for rule, reason in held:
                    # A measured loss, not a portfolio that cannot be valued right now.
                    measured = ctx.risk.value_now is not None
                    if rule in ("max-daily-loss", "max-drawdown") and measured and p.auto_kill:
                        p.auto_kill.loss_limit(rule, reason)
        self.paused = paused
        findings = {}
        now = p.clock()  # not ctx.now: whole seconds would hide this second's trades
        for monitor in p.drift.values():
            for f in monitor.check(now):
                findings[(f.strategy, f.bound_name)] = f
        for key, finding in findings.items():
            if key in self._drifting:
                continue  # still outside the envelope: said when it left it
            p.audit.record("drift", finding.model_dump(mode="json"))
            p.alerts.send(finding.to_alert(p.agent))
            if p.auto_kill:
                p.auto_kill.drift(finding.message)
        self._drifting = set(findings)
        for u in limits.values():
            p.metrics.limit_usage.labels(rule=u.rule).set(u.ratio)
        event = self.desk.event(
            self.tick_no, ctx, market, paused, self.history.first, list(limits.values())
        )
        p.audit.record(RISK, event.model_dump(mode="json"))
        if event.portfolio_value is not None:
            p.metrics.portfolio_value.set(event.portfolio_value)
        if event.pnl is not None:
            p.metrics.pnl.set(event.pnl)
        if event.drawdown_pct is not None:
            p.metrics.drawdown_pct.set(event.drawdown_pct)
        for asset, value in event.exposure.items():
            p.metrics.exposure.labels(asset=asset).set(value)
        for name, value in event.strategy_exposure.items():
            p.metrics.strategy_exposure.labels(strategy=name).set(value)

    def _record_trade(
        self,
        strategy: str,
        intent: Any,
        report: IntentReport,
        market: MarketSnapshot,
        before: PortfolioSnapshot,
        ctx: GuardContext,
        after: PortfolioSnapshot,
        exit: PlannedExit | None,
    ) -> None:
        p = self.p
        trade = build_trade(
            rpc=p.rpc,
            at=p.clock(),
            strategy=strategy,
            intent=intent,
            tx_hashes=report.tx_hashes,
            market=market,
            before=before,
            after=after,
            prices=ctx.prices,
            portfolio_value=ctx.risk.value_now,
            exit_reason=exit.rule if exit else None,
            pin=p.pins.get(strategy, ""),
        )
        trade = self.ledger.add(trade)
        p.metrics.gas_spent_wei.inc(trade.gas_cost_wei)
        if moved_assets(trade):
            p.audit.record(TRADE, trade.model_dump(mode="json"))
            if strategy in p.drift:
                p.drift[strategy].observe(trade)
        if exit is not None:
            p.metrics.position_exits.labels(reason=exit.rule).inc()
            self.alert(
                AlertKind.POSITION_EXIT,
                AlertSeverity.WARNING,
                f"{exit.rule}: closed a {strategy} position",
                detail=exit.reason,
                strategy=strategy,
                data={"realized_pnl": trade.realized_pnl, "tx_hashes": report.tx_hashes},
            )

    def _alert_refusals(self, strategy: str, stage: str, refusals: list[Refusal]) -> None:
        """Security refusals, price-sanity refusals and limit breaches raise alerts."""
        for r in refusals:
            rule = by_id(r.rule)
            if stage == "outcome":
                kind, severity = AlertKind.SECURITY_REFUSAL, AlertSeverity.CRITICAL
            elif rule is None:
                continue
            elif r.rule == "price-sane":
                kind, severity = AlertKind.PRICE, AlertSeverity.WARNING
            elif rule.group == "risk":
                kind, severity = AlertKind.LIMIT_BREACH, AlertSeverity.WARNING
            elif str(rule.severity) in ("critical", "high"):
                kind, severity = AlertKind.SECURITY_REFUSAL, AlertSeverity.CRITICAL
            else:
                continue
            self.alert(
                kind,
                severity,
                f"{r.rule} refused a {strategy} request",
                detail=r.reason,
                strategy=strategy,
                data={"rule": r.rule, "stage": stage},
            )

    def _spots(self, market: MarketSnapshot) -> dict[str, float]:
        """Each pool's spot price, quoted in the numeraire where the pool has it."""
        out = {}
        for pool in market.pools:
            base, quote = pool.token0, pool.token1
            if base == market.numeraire:
                base, quote = quote, base
            b, q = market.token(base), market.token(quote)
            spot = market.spot_price(base, quote)
            if b and q and spot:
                out[f"{b.symbol}/{q.symbol}"] = spot
        return out

    # --- observation (all network reads of a tick happen here) --------------------------

    def _observe(self) -> tuple[MarketSnapshot, PortfolioSnapshot, GuardContext]:
        p = self.p
        market = p.observer.snapshot()
        if market.chain_id != p.chain_id:
            raise InfraError(f"the RPC is on chain {market.chain_id}, not {p.chain_id}")
        portfolio = p.observer.portfolio(
            p.agent, spenders=list(p.spenders), block=market.block_number
        )
        codehashes, implementations = observe_code(p.rpc, p.allowlist, market.block_number)
        if p.quorum is not None:  # a lying primary is outvoted before anything is planned
            p.quorum.check(p.rpc, market.block_number, codehashes, market.pools)
        prices = numeraire_prices(market, weth=p.weth)
        if p.token_prices is not None:
            prices.update(p.token_prices(market.block_number, prices))
        now = p.clock()
        value, risk = self.history.observe(now, market, portfolio, prices)
        ctx = GuardContext(
            agent=p.agent,
            chain_id=p.chain_id,
            allowlist=p.allowlist,
            now=int(now),
            block_number=market.block_number,
            block_timestamp=market.block_timestamp,
            codehashes=codehashes,
            implementations=implementations,
            kill_switch_on=p.kill_switch.is_on(),
            market=market,
            prices=prices,
            fees=FeeQuote(
                base_fee_per_gas=market.base_fee_per_gas,
                max_priority_fee_per_gas=p.priority_fee_per_gas,
            ),
            risk=risk,
        )
        p.audit.record(
            "snapshot",
            {
                "tick": self.tick_no,
                "block": market.block_number,
                "block_timestamp": market.block_timestamp,
                "pools": [pool.model_dump() for pool in market.pools],
                "price_checks": [c.model_dump() for c in market.price_checks],
                "portfolio_value": value,
                "balances": portfolio.balances,
                "eth_balance": portfolio.eth_balance,
                "drifted": drifted_entries(p.allowlist, codehashes, implementations),
            },
        )
        return market, portfolio, ctx

    # --- strategy -----------------------------------------------------------------------

    def _suspended(self, name: str) -> bool:
        until = self.suspended.get(name)
        if until is None:
            return False
        if self.p.clock() < until:
            return True
        del self.suspended[name]
        self.failures[name] = 0
        self.p.audit.record("strategy-resumed", {"strategy": name, "after": "failures"})
        return False

    def _tick_for(
        self, name: str, market: MarketSnapshot, portfolio: PortfolioSnapshot, ctx: GuardContext
    ) -> Tick:
        """What the strategy is sent: a JSON copy of the agent's snapshot (the agent keeps
        its own, which no strategy has touched), its positions and its limits' headroom."""
        positions, headroom = [], []
        if name in self.desk.strategies:
            positions = [
                PositionView(
                    token=x.token, amount=str(x.amount), cost=x.cost, opened_at=x.opened_at
                )
                for x in self.ledger.book.of(name)
            ]
            sctx = self.desk.context_for(name, ctx)
            headroom = [
                HeadroomView(rule=u.rule, used=u.used, limit=u.limit)
                for u in self.desk.usage(name, sctx)
            ]
        return Tick(
            tick=self.tick_no,
            market=to_wire(market.model_dump(mode="json")),
            portfolio=to_wire(portfolio.model_dump(mode="json")),
            positions=positions,
            headroom=headroom,
        )

    def _ask(
        self,
        strategy: StrategyPort,
        market: MarketSnapshot,
        portfolio: PortfolioSnapshot,
        ctx: GuardContext,
        reports: list[IntentReport],
    ) -> list[Any]:
        p = self.p
        name = strategy.name
        with p.metrics.time("strategy"):
            proposal = strategy.propose(self._tick_for(name, market, portfolio, ctx))
        if proposal.notes:
            p.audit.record(
                "strategy-notes", {"tick": self.tick_no, "strategy": name, "notes": proposal.notes}
            )
        if not proposal.ok:
            self._strategy_failed(strategy, proposal, reports)
            return []
        self.failures[name] = 0
        dropped = proposal.dropped + max(0, len(proposal.intents) - MAX_INTENTS_PER_TICK)
        if dropped:
            p.audit.record(
                "intents-dropped", {"tick": self.tick_no, "strategy": name, "dropped": dropped}
            )
            p.metrics.refusals.labels(rule="intent-rate-limit").inc(dropped)
            if p.auto_kill:
                p.auto_kill.flooded(name, dropped, p.clock())
        intents = []
        for raw in proposal.intents[:MAX_INTENTS_PER_TICK]:
            try:
                intents.append(_INTENT.validate_python(raw))
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(x) for x in first["loc"])
                reason = (
                    "the strategy returned something that is not an intent: "
                    f"{where + ': ' if where else ''}{first['msg']}"
                )
                p.audit.record("intent-malformed", {"strategy": name, "reason": reason})
                p.metrics.refusals.labels(rule="intent-schema").inc()
                reports.append(
                    IntentReport(
                        tick=self.tick_no,
                        strategy=name,
                        intent_id="-",
                        kind="malformed",
                        status="refused",
                        stage="strategy",
                        refusals=[Refusal(rule="intent-schema", reason=reason)],
                    )
                )
        return intents

    def _strategy_failed(
        self, strategy: StrategyPort, proposal: Proposal, reports: list[IntentReport]
    ) -> None:
        """A tick without an answer: refused, audited, alerted; repeated, a pause."""
        p = self.p
        name = strategy.name
        count = self.failures.get(name, 0) + 1
        self.failures[name] = count
        reason = f"strategy {name}: {proposal.error}"
        p.metrics.refusals.labels(rule="strategy-failed").inc()
        p.audit.record(
            "strategy-error",
            {
                "tick": self.tick_no,
                "strategy": name,
                "failure": proposal.failure,
                "error": proposal.error,
                "in_a_row": count,
            },
        )
        reports.append(
            IntentReport(
                tick=self.tick_no,
                strategy=name,
                intent_id="-",
                kind=proposal.failure or "failed",
                status="refused",
                stage="strategy",
                refusals=[Refusal(rule="strategy-failed", reason=reason)],
            )
        )
        limits = strategy.limits
        paused = count >= limits.max_failures
        self.alert(
            AlertKind.STRATEGY,
            AlertSeverity.CRITICAL if paused else AlertSeverity.WARNING,
            f"strategy {name} paused after {count} failed ticks"
            if paused
            else f"strategy {name} failed a tick ({proposal.failure})",
            detail=reason,
            strategy=name,
            data={"failure": proposal.failure, "in_a_row": count},
        )
        if paused:
            self.suspended[name] = p.clock() + limits.pause_seconds
            p.audit.record(
                "strategy-paused",
                {
                    "strategy": name,
                    "rules": ["strategy-failed"],
                    "reason": f"{count} failed ticks in a row; paused for "
                    f"{limits.pause_seconds:g} s",
                },
            )

    # --- one intent ---------------------------------------------------------------------

    def _handle_safely(
        self,
        strategy: str,
        intent: Any,
        market: MarketSnapshot,
        portfolio: PortfolioSnapshot,
        base_ctx: GuardContext,
        *,
        exit: PlannedExit | None = None,
    ) -> IntentReport:
        """`_handle`, with any unexpected error turned into a refusal of this intent: the
        loop, and the other intents, go on."""
        try:
            return self._handle(strategy, intent, market, portfolio, base_ctx, exit=exit)
        except Exception as exc:
            reason = f"the agent could not handle this intent ({type(exc).__name__}: {exc})"[:500]
            self.p.metrics.refusals.labels(rule="internal-error").inc()
            self.p.audit.record(
                "refused",
                {
                    "intent_id": getattr(intent, "id", "-"),
                    "stage": "internal",
                    "refusals": [{"rule": "internal-error", "reason": reason}],
                },
            )
            self.alert(
                AlertKind.SECURITY_REFUSAL,
                AlertSeverity.WARNING,
                f"internal-error refused a {strategy} request",
                detail=reason,
                strategy=strategy,
                data={"rule": "internal-error", "stage": "internal"},
            )
            return IntentReport(
                tick=self.tick_no,
                strategy=strategy,
                intent_id=str(getattr(intent, "id", "-")),
                kind=str(getattr(intent, "kind", "unknown")),
                why=str(getattr(intent, "reason", "")),
                status="refused",
                stage="internal",
                refusals=[Refusal(rule="internal-error", reason=reason)],
            )

    def _handle(
        self,
        strategy: str,
        intent: Any,
        market: MarketSnapshot,
        portfolio: PortfolioSnapshot,
        base_ctx: GuardContext,
        *,
        exit: PlannedExit | None = None,
    ) -> IntentReport:
        p = self.p
        now = p.clock()
        count = self.rate.record(strategy, now)
        p.metrics.intents.labels(strategy=strategy, kind=intent.kind).inc()
        p.audit.record(
            "intent",
            {
                "tick": self.tick_no,
                "strategy": strategy,
                "pin": p.pins.get(strategy, ""),
                "intent": intent.model_dump(),
            },
        )
        base = {
            "tick": self.tick_no,
            "strategy": strategy,
            "intent_id": intent.id,
            "kind": intent.kind,
            "why": intent.reason,
        }

        hashes: list[str] = []
        granted: list[tuple[str, str]] = []  # (token, spender) approvals of this plan mined

        def refused(stage: str, refusals: list[Refusal], plan: list[str] | None = None):
            self._left_approvals += [(strategy, intent.id, t, s) for t, s in granted]
            for r in refusals:
                p.metrics.refusals.labels(rule=r.rule).inc()
            if p.auto_kill and any(r.rule == "intent-rate-limit" for r in refusals):
                p.auto_kill.flooded(strategy, 1, p.clock())
            self._alert_refusals(strategy, stage, refusals)
            p.audit.record(
                "refused",
                {
                    "intent_id": intent.id,
                    "stage": stage,
                    "refusals": [r.model_dump() for r in refusals],
                },
            )
            return IntentReport(
                **base,
                plan=plan or [],
                status="refused",
                stage=stage,
                refusals=refusals,
                tx_hashes=list(hashes),  # calls of the plan already sent, if any
            )

        # plan
        try:
            with p.metrics.time("plan"):
                calls = p.planner.plan(intent, market, portfolio)
        except DefiagentError as exc:
            return refused("plan", [Refusal(rule="planner", reason=exc.message)])
        plan = [c.description for c in calls]
        p.audit.record("plan", {"intent_id": intent.id, "calls": [c.model_dump() for c in calls]})

        # quotes some protocols read on the fork for the guard (Uniswap V3: QuoterV2); a swap
        # left unquoted is refused by the slippage bound
        try:
            with p.metrics.time("quote"):
                market = self._prequoted(market, calls)
        except DefiagentError as exc:
            return refused("plan", [Refusal(rule="quoter", reason=exc.message)], plan)

        # guard (pure; context read above)
        ctx = dataclasses.replace(
            base_ctx,
            market=market,
            now=int(now),
            strategy=strategy,
            intent_kind=intent.kind,
            intents_in_window=count,
            spent_in_window=self.spend.spent(now),
            kill_switch_on=p.kill_switch.is_on(),
            position_exit=exit.rule if exit else "",
        )
        own = self.desk.strategies.get(strategy)
        guard = own.guard if own else p.guard
        if own:
            ctx = self.desk.context_for(strategy, ctx)
        decisions: list[Decision] = []
        with p.metrics.time("guard"):
            for call in calls:
                decisions.append(guard.decide(call, ctx))
        for call, decision in zip(calls, decisions, strict=True):
            p.audit.record(
                "guard",
                {
                    "intent_id": intent.id,
                    "target": call.target,
                    "allowed": decision.allowed,
                    "verdicts": [v.model_dump() for v in decision.verdicts],
                },
            )
        refusals = [r for d in decisions for r in refusals_of(d)]
        if refusals:
            return refused("guard", _dedupe(refusals), plan)
        inner = calls
        checked_allowlist = p.allowlist
        if p.safe is not None:
            # One transaction from the Safe through its guard (approve and swap in one
            # MultiSendCallOnly batch): simulated, checked and signed once, never re-simulated.
            calls = [p.safe.wrap(inner)]
            checked_allowlist = p.safe.check_allowlist

        # simulate the whole plan, then check every outcome
        try:
            with p.metrics.time("simulate"):
                outcomes = p.simulator.simulate_sequence(calls)
        except DefiagentError as exc:
            p.metrics.simulations.labels(result="error").inc()
            return refused("simulation", [Refusal(rule="simulation", reason=exc.message)], plan)
        if p.safe is not None:  # a refusal of the on-chain guard, in words
            outcomes = [p.safe.explain(o) for o in outcomes]
        for o in outcomes:
            p.metrics.simulations.labels(result="ok" if o.success else "reverted").inc()
        check_ctx = CheckContext(
            allowlist=checked_allowlist,
            max_gas=p.max_gas_per_tx,
            tokens=p.simulator.token_meta(list(market.tokens)),
            share_tolerance_bps=p.share_tolerance_bps,
        )
        refusals = []
        for call, outcome in zip(calls, outcomes, strict=True):
            refusals += self._check(intent.id, call, outcome, check_ctx, ctx)
        if refusals:
            return refused("outcome", _dedupe(refusals), plan)

        # the fork's own price of the swap must agree with the quote from the RPC's reserves
        problem = requote_problem(
            intent, calls, outcomes, market, weth=p.weth, max_bps=p.requote_max_bps
        )
        if problem:
            return refused("outcome", [Refusal(rule=REQUOTE, reason=problem)], plan)

        # a buy must sell back on the fork, same block, at a bounded loss (honeypot tokens)
        with p.metrics.time("check"):
            probed = check_plan_round_trip(
                p.simulator,
                intent,
                inner,
                outcomes if p.safe is None else None,
                agent=p.agent,
                router=p.planner.p.router,
                weth=p.weth,
                numeraire=market.numeraire,
                config=p.round_trip,
                addresses=p.planner.p,
            )
        if probed is not None:
            probe, verdict = probed
            p.audit.record(
                "round-trip",
                {
                    "intent_id": intent.id,
                    "probe": probe.model_dump(mode="json"),
                    "verdict": verdict.model_dump(),
                },
            )
            if not verdict.allowed:
                refusal = Refusal(rule=verdict.rule, reason=verdict.reason)
                return refused("outcome", [refusal], plan)

        def pinned_problem(call: PlannedCall, outcome: SimulationOutcome) -> str | None:
            # The pinned code is still there at the block the transaction is sent at.
            try:
                return pinned_code_problem(
                    p.rpc, checked_allowlist, [call.target, *outcome.touched]
                )
            except DefiagentError as exc:
                return f"the code could not be read again right before signing: {exc.message}"

        def settle(call: PlannedCall, result: ExecutionResult) -> IntentReport | None:
            """Account for one sent call; the intent's report when it ends here."""
            p.metrics.sends.labels(status=result.status).inc()
            if result.tx_hash:
                hashes.append(result.tx_hash)
            if result.status == "refused":
                return refused("execution", [Refusal(rule="executor", reason=result.reason)], plan)
            if not result.ok:
                self._left_approvals += [(strategy, intent.id, t, s) for t, s in granted]
                p.audit.record("failed", {"intent_id": intent.id, "reason": result.reason})
                self._transaction_failed(strategy, intent.id, result)
                return IntentReport(
                    **base,
                    plan=plan,
                    status="failed",
                    stage="execution",
                    refusals=[Refusal(rule="executor", reason=result.reason)],
                    tx_hashes=hashes,
                )
            if p.auto_kill:
                p.auto_kill.transaction_succeeded()
            approval = granted_approval(call)
            if approval is not None:
                granted.append(approval)
            spent = sum(outflow_value(c, ctx.prices)[0] for c in (inner if p.safe else [call]))
            self.spend.add(p.clock(), spent)
            return None

        bundle = getattr(p.executor, "execute_bundle", None)
        if len(calls) > 1 and p.safe is None and getattr(p.executor, "bundles", False) and bundle:
            # A private relay takes the plan as one bundle: every call in one block, in
            # order, or none; so each lands on the state its simulation assumed.
            for call, outcome in zip(calls, outcomes, strict=True):
                problem = pinned_problem(call, outcome)
                if problem:
                    return refused(
                        "execution", [Refusal(rule="codehash-pinned", reason=problem)], plan
                    )
            with p.metrics.time("execute"):
                results = bundle(list(zip(calls, outcomes, strict=True)))
            for call, result in zip(calls, results, strict=True):
                ended = settle(call, result)
                if ended is not None:
                    return ended
        else:
            # call by call; a later call is simulated again on the state just mined
            for index, (call, outcome) in enumerate(zip(calls, outcomes, strict=True)):
                if index > 0:
                    try:
                        with p.metrics.time("simulate"):
                            outcome = p.simulator.simulate(call)
                        p.metrics.simulations.labels(
                            result="ok" if outcome.success else "reverted"
                        ).inc()
                    except DefiagentError as exc:
                        p.metrics.simulations.labels(result="error").inc()
                        return refused(
                            "simulation", [Refusal(rule="simulation", reason=exc.message)], plan
                        )
                    again = self._check(intent.id, call, outcome, check_ctx, ctx)
                    if again:
                        return refused("outcome", _dedupe(again), plan)
                problem = pinned_problem(call, outcome)
                if problem:
                    return refused(
                        "execution", [Refusal(rule="codehash-pinned", reason=problem)], plan
                    )
                with p.metrics.time("execute"):
                    result = p.executor.execute(call, outcome)
                ended = settle(call, result)
                if ended is not None:
                    return ended
        p.audit.record("executed", {"intent_id": intent.id, "tx_hashes": hashes})
        return IntentReport(**base, plan=plan, status="executed", stage="done", tx_hashes=hashes)

    def _reobserve(self, state: list[Any]) -> bool:
        """Read the state again into `state`; False (recorded) when it cannot be read, and
        the tick must stop."""
        try:
            state[:] = self._observe()
        except DefiagentError as exc:
            self.p.audit.record("tick-aborted", {"tick": self.tick_no, "reason": str(exc)})
            return False
        return True

    def _revoke_left_approvals(self, state: list[Any], reports: list[IntentReport]) -> bool:
        """Approve 0 for each approval a refused plan left behind, through the guarded path
        (planned, guarded, simulated, checked). False when the state cannot be read."""
        p = self.p
        while self._left_approvals:
            strategy, intent_id, token, spender = self._left_approvals.pop(0)
            if not self._reobserve(state):
                return False
            m, pf, ctx = state
            if pf.allowance(token, spender) == 0:
                continue  # spent or already gone: nothing left behind
            revoke = Approve(
                token=token,
                spender=spender,
                amount=0,
                reason=f"revoke the approval left behind by refused intent {intent_id}",
            )
            p.audit.record(
                "approval-revoke",
                {"strategy": strategy, "intent_id": intent_id, "token": token, "spender": spender},
            )
            report = self._handle_safely(strategy, revoke, m, pf, ctx)
            reports.append(report)
            if report.status == "executed":
                if not self._reobserve(state):
                    return False
            else:
                self.alert(
                    AlertKind.SECURITY_REFUSAL,
                    AlertSeverity.CRITICAL,
                    f"an approval left behind by a {strategy} intent could not be revoked",
                    detail=f"{token} still approved to {spender}: "
                    + "; ".join(r.reason for r in report.refusals),
                    strategy=strategy,
                    data={"token": token, "spender": spender, "intent_id": intent_id},
                )
        return True

    def _transaction_failed(self, strategy: str, intent_id: str, result: Any) -> None:
        p = self.p
        stuck = result.status == "pending"
        p.metrics.tx_pending.set(1 if stuck else 0)
        self.alert(
            AlertKind.TX_STUCK if stuck else AlertKind.TX_FAILED,
            AlertSeverity.CRITICAL,
            f"transaction {'stuck' if stuck else 'failed'} for a {strategy} intent",
            detail=result.reason,
            strategy=strategy,
            data={"intent_id": intent_id, "tx_hash": result.tx_hash, "status": result.status},
        )
        if p.auto_kill:
            p.auto_kill.transaction_failed(result.reason or result.status)

    def _prequoted(self, market: MarketSnapshot, calls: list[PlannedCall]) -> MarketSnapshot:
        """`market` with the fork's quotes for the plan's swaps that need them (none for
        Uniswap V2, whose quote is the snapshot's reserves: then no request is made)."""
        if not needs_prequotes(calls, self.p.allowlist):
            return market
        fork = self.p.simulator.fork
        if self._fork_w3 is None:
            self._fork_w3 = Web3(Web3.HTTPProvider(fork.url))
        return with_prequotes(
            market,
            calls,
            self.p.allowlist,
            self._fork_w3,
            fork.block_number or 0,
            self.p.planner.p,
        )

    def _check(
        self,
        intent_id: str,
        call: PlannedCall,
        outcome: SimulationOutcome,
        ctx: CheckContext,
        guard_ctx: GuardContext,
    ) -> list[Refusal]:
        p = self.p
        with p.metrics.time("check"):
            checked = run_checks(call, outcome, ctx)
            pinned = TouchedCodePinned().check(list(outcome.touched), guard_ctx)
            decision = Decision(verdicts=[*checked.verdicts, pinned])
        p.audit.record(
            "simulation",
            {
                "intent_id": intent_id,
                "target": call.target,
                "success": outcome.success,
                "revert_reason": outcome.revert_reason,
                "gas_used": outcome.gas_used,
                "block_number": outcome.block_number,
                "deltas": outcome.deltas,
                "approvals": [a.model_dump() for a in outcome.approvals],
                "touched": outcome.touched,
                "checks": [v.model_dump() for v in decision.verdicts],
            },
        )
        return refusals_of(decision)


_APPROVE_SELECTOR = "0x095ea7b3"  # approve(address,uint256)


def granted_approval(call: PlannedCall) -> tuple[str, str] | None:
    """(token, spender) when `call` is an ERC-20 approve of a non-zero amount."""
    data = call.data.lower()
    if not data.startswith(_APPROVE_SELECTOR) or len(data) < 10 + 128:
        return None
    spender = to_checksum_address("0x" + data[10 + 24 : 10 + 64])
    amount = int(data[10 + 64 : 10 + 128], 16)
    return (call.target, spender) if amount > 0 else None


def _dedupe(refusals: list[Refusal]) -> list[Refusal]:
    seen, out = set(), []
    for r in refusals:
        if (r.rule, r.reason) not in seen:
            seen.add((r.rule, r.reason))
            out.append(r)
    return out
