"""Prometheus metrics: intents, refusals by rule, simulations, transactions, PnL, exposure,
gas, limits, alerts, the kill switch, and time per pipeline stage.

Each agent gets its own CollectorRegistry (tests and the demo can run several agents in
one process); `serve(port)` exposes it over HTTP for Prometheus to scrape.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from defiagent.guard.registry import EXIT_RULES

STAGES = ("snapshot", "strategy", "plan", "guard", "simulate", "check", "execute", "tick")
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class AgentMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.ticks = Counter("defiagent_ticks", "Agent loop ticks", ["outcome"], registry=r)
        self.intents = Counter(
            "defiagent_intents", "Intents proposed by strategies", ["strategy", "kind"], registry=r
        )
        self.refusals = Counter(
            "defiagent_refusals",
            "Refusals, by the rule or check that refused",
            ["rule"],
            registry=r,
        )
        self.sends = Counter(
            "defiagent_sends", "Transactions sent, by receipt status", ["status"], registry=r
        )
        self.simulations = Counter(
            "defiagent_simulations",
            "Fork simulations, by result (ok, reverted, error)",
            ["result"],
            registry=r,
        )
        self.tx_pending = Gauge(
            "defiagent_tx_pending", "Transactions sent and not yet settled", registry=r
        )
        self.gas_spent_wei = Counter(
            "defiagent_gas_spent_wei", "Gas paid by sent transactions, in wei", registry=r
        )
        self.portfolio_value = Gauge(
            "defiagent_portfolio_value", "Portfolio value in the numeraire", registry=r
        )
        self.pnl = Gauge(
            "defiagent_pnl", "Portfolio value minus its first recorded value", registry=r
        )
        self.drawdown_pct = Gauge(
            "defiagent_drawdown_pct", "Percent below the peak portfolio value", registry=r
        )
        self.exposure = Gauge(
            "defiagent_exposure",
            "Value held per asset, in the numeraire",
            ["asset"],
            registry=r,
        )
        self.strategy_exposure = Gauge(
            "defiagent_strategy_exposure",
            "Value of the open positions each strategy controls, in the numeraire",
            ["strategy"],
            registry=r,
        )
        self.limit_usage = Gauge(
            "defiagent_limit_usage_ratio",
            "How much of each risk limit is used (1 = at the limit)",
            ["rule"],
            registry=r,
        )
        self.strategy_paused = Gauge(
            "defiagent_strategy_paused", "1 while a strategy is paused", ["strategy"], registry=r
        )
        self.kill_switch = Gauge(
            "defiagent_kill_switch_on", "1 while the kill switch is on", registry=r
        )
        self.alerts = Counter(
            "defiagent_alerts",
            "Alerts raised, by kind and whether a sink took them",
            ["kind", "delivered"],
            registry=r,
        )
        self.position_exits = Counter(
            "defiagent_position_exits",
            "Positions the agent closed by itself, by reason",
            ["reason"],
            registry=r,
        )
        # Exits are rare: a reason's series must exist at 0 before its first exit, or
        # increase() and rate() (the dashboard's panel) never see that first one.
        for rule in EXIT_RULES:
            self.position_exits.labels(reason=rule.id)
        self.stage_seconds = Histogram(
            "defiagent_stage_seconds",
            "Time spent per pipeline stage",
            ["stage"],
            buckets=_BUCKETS,
            registry=r,
        )

    @contextmanager
    def time(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.stage_seconds.labels(stage=stage).observe(time.perf_counter() - start)

    def value(self, name: str, **labels: str) -> float:
        """Current value of a sample (for summaries and tests)."""
        got = self.registry.get_sample_value(name, labels)
        return got or 0.0

    def serve(self, port: int, addr: str = "127.0.0.1") -> None:
        start_http_server(port, addr=addr, registry=self.registry)
