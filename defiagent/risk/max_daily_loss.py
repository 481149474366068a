from __future__ import annotations

from pydantic import Field

from defiagent.guard.base import GuardContext, RuleConfig, Severity
from defiagent.monitoring.events import LimitUsage
from defiagent.risk.base import PausingRule, unvalued


class MaxDailyLossConfig(RuleConfig):
    enabled: bool = True
    max_loss_pct: float = Field(default=2.0, gt=0, le=100, description="percent of portfolio value")
    window_hours: float = Field(default=24, gt=0, description="look-back window")


class MaxDailyLoss(PausingRule[MaxDailyLossConfig]):
    id = "max-daily-loss"
    title = "MaxDailyLoss"
    description = "pause all trading once the portfolio has lost too much within the window"
    threat = "a strategy that keeps trading while it bleeds (a broken model, a drifting market)"
    severity = Severity.HIGH
    section = "max_daily_loss"
    Config = MaxDailyLossConfig

    def pause_reason(self, ctx: GuardContext) -> str | None:
        if ctx.risk.value_now is None:
            return unvalued("the loss limit", ctx)
        loss = ctx.risk.loss_pct_in_window or 0.0
        if loss >= self.config.max_loss_pct:
            return (
                f"the portfolio lost {loss:.2f}% in the last {self.config.window_hours:g}h "
                f"(limit {self.config.max_loss_pct:g}%): trading is paused"
            )
        return None

    def usage(self, ctx: GuardContext) -> LimitUsage | None:
        if ctx.risk.loss_pct_in_window is None:
            return None
        return LimitUsage(
            rule=self.id, used=ctx.risk.loss_pct_in_window, limit=self.config.max_loss_pct
        )

    def explain(self) -> str:
        c = self.config
        return (
            f"{self.title}: pause all trading after {c.max_loss_pct:g}% loss in {c.window_hours:g}h"
        )
