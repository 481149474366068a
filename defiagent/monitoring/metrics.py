"""Prometheus metrics: intents, refusals by rule, sends, and time per pipeline stage.

Each agent gets its own CollectorRegistry (tests and the demo can run several agents in
one process); `serve(port)` exposes it over HTTP for Prometheus to scrape.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

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
