from __future__ import annotations

from pydantic import Field

from defiagent.decisions import Verdict
from defiagent.guard.base import GuardContext, GuardRequest, Rule, RuleConfig, Severity
from defiagent.guard.valuation import no_price, outflow_value


class WindowValueCapConfig(RuleConfig):
    max_value: float = Field(default=5_000.0, gt=0, description="numeraire units per window")
    window_seconds: int = Field(default=86_400, gt=0, description="length of the sliding window")


class WindowValueCap(Rule[WindowValueCapConfig]):
    id = "value-cap-per-window"
    title = "WindowValueCap"
    description = "what all transactions together may spend in a sliding window is capped"
    threat = "many small trades that together move the whole portfolio (salami slicing)"
    severity = Severity.HIGH
    section = "window_value_cap"
    Config = WindowValueCapConfig

    def check(self, req: GuardRequest, ctx: GuardContext) -> Verdict:
        value, unpriced = outflow_value(req.call, ctx.prices)
        if unpriced:
            return self.refuse(no_price(unpriced, "spend"))
        total = ctx.spent_in_window + value
        if total > self.config.max_value:
            return self.refuse(
                f"{ctx.spent_in_window:,.2f} already spent in the last "
                f"{self.config.window_seconds}s; "
                f"this call ({value:,.2f}) would pass the cap {self.config.max_value:,.2f}"
            )
        return self.allow()

    def explain(self) -> str:
        hours = self.config.window_seconds / 3600
        return (
            f"{self.title}: at most {self.config.max_value:,.2f} (numeraire) spent per {hours:g}h"
        )
