from __future__ import annotations

from pydantic import Field

from defiagent.guard.base import GuardContext, RuleConfig, Severity
from defiagent.monitoring.events import LimitUsage
from defiagent.risk.base import PausingRule, unvalued


class MaxDrawdownConfig(RuleConfig):
    enabled: bool = True
    max_drawdown_pct: float = Field(
        default=10.0, gt=0, le=100, description="percent below the peak"
    )


class MaxDrawdown(PausingRule[MaxDrawdownConfig]):
    id = "max-drawdown"
    title = "MaxDrawdown"
    description = "stop trading once the portfolio is too far below its peak since start"
    threat = "slow losses that never trip a daily limit but add up"
    severity = Severity.HIGH
    section = "max_drawdown"
    Config = MaxDrawdownConfig

    def pause_reason(self, ctx: GuardContext) -> str | None:
        if ctx.risk.value_now is None:
            return unvalued("the drawdown", ctx)
        drawdown = ctx.risk.drawdown_pct or 0.0
        if drawdown >= self.config.max_drawdown_pct:
            return (
                f"the portfolio is {drawdown:.2f}% below its peak (limit "
                f"{self.config.max_drawdown_pct:g}%): trading is stopped"
            )
        return None

    def usage(self, ctx: GuardContext) -> LimitUsage | None:
        if ctx.risk.drawdown_pct is None:
            return None
        return LimitUsage(
            rule=self.id, used=ctx.risk.drawdown_pct, limit=self.config.max_drawdown_pct
        )

    def explain(self) -> str:
        return f"{self.title}: stop trading {self.config.max_drawdown_pct:g}% below the peak value"
