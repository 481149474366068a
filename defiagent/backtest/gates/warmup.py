from __future__ import annotations

import json
from typing import Any

from pydantic import Field

from defiagent.backtest.gates.base import Gate, GateConfig, GateSubject, GateVerdict
from defiagent.backtest.models import TickDecision
from defiagent.errors import DefiagentError

# What an intent asks for; its id and free-text reason may differ run to run.
_NOT_THE_DECISION = frozenset({"id", "reason"})


class WarmupConfig(GateConfig):
    ticks: int = Field(
        default=50, ge=1, description="N: the warm-up compared with 2N ticks of prior history"
    )
    compare_ticks: int = Field(default=200, ge=1, description="ticks whose decisions must agree")
    max_disagreement_pct: float = Field(
        default=0.0, ge=0, le=100, description="share of those ticks allowed to differ"
    )


def decision_key(decision: TickDecision) -> str:
    intents = [
        {k: v for k, v in intent.items() if k not in _NOT_THE_DECISION}
        for intent in decision.intents
    ]
    return json.dumps({"intents": intents, "failed": decision.error is not None}, sort_keys=True)


class WarmupDependence(Gate[WarmupConfig]):
    id = "warmup"
    title = "WarmupDependence"
    description = (
        "the strategy's decisions must be the same after N and after 2N ticks of prior "
        "history (recursive analysis)"
    )
    threat = (
        "indicators that depend on where the backtest started: live, the agent starts "
        "anywhere, so the tested decisions would not be the ones made"
    )
    section = "warmup"
    comparison = "<="
    Config = WarmupConfig

    @property
    def threshold(self) -> float:
        return self.config.max_disagreement_pct

    def judge(self, subject: GateSubject) -> GateVerdict:
        n = self.config.ticks
        lo = max(subject.start, 2 * n)
        hi = min(subject.end, lo + self.config.compare_ticks)
        if hi - lo < 1:
            return self.failed(
                f"the data has no ticks left after {2 * n} ticks of warm-up: record a longer "
                "history or lower [backtest.gates.warmup] ticks"
            )
        if subject.evaluate is None:
            return self.failed("no backtest can be run here to replay the strategy")
        params = subject.chosen_params
        try:
            short = subject.evaluate(params, lo, hi, n).decisions[-(hi - lo) :]
            long = subject.evaluate(params, lo, hi, 2 * n).decisions[-(hi - lo) :]
        except DefiagentError as exc:
            return self.failed(f"the warm-up replay failed: {exc}")
        if [d.block for d in short] != [d.block for d in long] or not short:
            return self.failed("the two replays did not decide on the same ticks")
        differ: list[Any] = [
            a.block for a, b in zip(short, long, strict=True) if decision_key(a) != decision_key(b)
        ]
        pct = 100.0 * len(differ) / len(short)
        where = f"; first at block {differ[0]}" if differ else ""
        return self.measured(
            pct,
            f"{len(differ)} of {len(short)} ticks decided differently after {n} and after "
            f"{2 * n} ticks of history{where} (limit {self.threshold:g}%)",
        )
