"""The behaviour report, as data: what `defiagent report --json` prints and the HTML shows."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from defiagent.monitoring.events import TradeEvent
from defiagent.risk.drift import DriftFinding
from defiagent.strategy.mandate import Mandate


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class ChainCheck(_Model):
    ok: bool
    records: int  # records whose chain is intact (all of them when ok)
    problem_line: int | None = None
    problem: str | None = None

    @property
    def banner(self) -> str:
        if self.ok:
            return ""
        return (
            f"THE AUDIT LOG'S HASH CHAIN IS BROKEN at line {self.problem_line}: {self.problem}. "
            f"Only the first {self.records} records are known to be intact; everything this "
            "report shows from that line on may have been edited, inserted or removed."
        )


class Summary(_Model):
    records: int = 0
    unreadable_lines: int = 0
    runs: int = 0  # "start" records in the period
    ticks_skipped: int = 0
    intents: int = 0
    executed: int = 0
    failed: int = 0
    refused_intents: int = 0
    refusals: int = 0  # one per rule that refused (an intent may have several)
    trades: int = 0
    traded_value: float = 0.0
    realized_pnl: float = 0.0
    closed_trades: int = 0
    winning_trades: int = 0
    win_rate: float | None = None
    mean_slippage_bps: float | None = None
    gas_cost_value: float = 0.0
    value_start: float | None = None
    value_end: float | None = None
    value_change: float | None = None
    pnl_end: float | None = None  # the agent's own PnL figure at the last risk record
    max_drawdown_pct: float | None = None
    alerts: int = 0
    kill_switch_on: bool | None = None  # the last recorded state in the period


class TradeRow(_Model):
    time: str
    trade: TradeEvent
    token_in_label: str = ""
    token_out_label: str = ""


class RefusalRow(_Model):
    time: str
    intent_id: str
    strategy: str = ""
    stage: str = ""
    rule: str
    reason: str


class ReasonCount(_Model):
    rule: str
    reason: str
    count: int


class ValuePoint(_Model):
    time: str
    ts: float  # unix seconds
    value: float | None = None
    pnl: float | None = None
    drawdown_pct: float | None = None
    source: str = "risk"  # or "snapshot" when no risk record was written


class ExposurePoint(_Model):
    time: str
    ts: float
    exposure: dict[str, float] = Field(default_factory=dict)


class LimitRow(_Model):
    rule: str
    used: float
    limit: float
    ratio: float
    max_ratio: float
    max_at: str


class AlertRow(_Model):
    time: str
    kind: str = ""
    severity: str = ""
    title: str = ""
    detail: str = ""
    strategy: str = ""


class KillSwitchRow(_Model):
    time: str
    on: bool
    reason: str = ""
    changed_by: str = ""


class FailureRow(_Model):
    time: str
    intent_id: str = ""
    reason: str = ""


class DriftSection(_Model):
    mandate: Mandate | None = None
    source: str | None = None  # "config" (the start record) or the --mandate file
    error: str | None = None  # a mandate in the log that does not validate
    findings: list[DriftFinding] = Field(default_factory=list)


class BehaviourReport(_Model):
    source: str
    generated_at: str
    since: str | None = None
    period_start: str | None = None
    period_end: str | None = None
    agent: str | None = None
    strategies: list[str] = Field(default_factory=list)
    chain: ChainCheck
    summary: Summary
    kinds: dict[str, int] = Field(default_factory=dict)
    trades: list[TradeRow] = Field(default_factory=list)
    refusals: list[RefusalRow] = Field(default_factory=list)
    refusals_by_rule: dict[str, int] = Field(default_factory=dict)
    refusals_by_reason: list[ReasonCount] = Field(default_factory=list)
    value_series: list[ValuePoint] = Field(default_factory=list)
    exposure_series: list[ExposurePoint] = Field(default_factory=list)
    limits: list[LimitRow] = Field(default_factory=list)
    paused: dict[str, str] = Field(default_factory=dict)  # at the last risk record
    alerts: list[AlertRow] = Field(default_factory=list)
    kill_switch: list[KillSwitchRow] = Field(default_factory=list)
    failures: list[FailureRow] = Field(default_factory=list)
    drift: DriftSection = Field(default_factory=DriftSection)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
