"""What each tick did, intent by intent: the data behind the CLI tables and --json output."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from defiagent.decisions import Decision


class Refusal(BaseModel):
    model_config = ConfigDict(frozen=True)

    rule: str
    reason: str


def refusals_of(decision: Decision) -> list[Refusal]:
    return [Refusal(rule=v.rule, reason=v.reason) for v in decision.refusals]


Stage = Literal[
    "strategy", "plan", "guard", "simulation", "outcome", "execution", "done", "internal"
]


class IntentReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    tick: int
    strategy: str
    intent_id: str
    kind: str
    why: str = ""  # the strategy's own reason
    plan: list[str] = []  # descriptions of the planned calls
    status: Literal["executed", "refused", "failed"]
    stage: Stage
    refusals: list[Refusal] = []
    tx_hashes: list[str] = []

    @property
    def first_rule(self) -> str | None:
        return self.refusals[0].rule if self.refusals else None


class TickReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    tick: int
    block: int | None = None
    skipped: str | None = None  # why the whole tick did nothing (kill switch, RPC down)
    portfolio_value: float | None = None
    spot_prices: dict[str, float] = {}
    intents: list[IntentReport] = []
    paused: dict[str, str] = {}  # strategy -> why it was not asked this tick
