from __future__ import annotations

from pydantic import Field

from defiagent.decisions import Verdict
from defiagent.guard.base import GuardContext, GuardRequest, Rule, RuleConfig, Severity


class MaxDrawdownConfig(RuleConfig):
    enabled: bool = True
    max_drawdown_pct: float = Field(
        default=10.0, gt=0, le=100, description="percent below the peak"
    )


class MaxDrawdown(Rule):
    id = "max-drawdown"
    title = "MaxDrawdown"
    description = "stop trading once the portfolio is too far below its peak since start"
    threat = "slow losses that never trip a daily limit but add up"
    severity = Severity.HIGH
    group = "risk"
    section = "max_drawdown"
    Config = MaxDrawdownConfig

    def check(self, req: GuardRequest, ctx: GuardContext) -> Verdict:
        if ctx.risk.value_now is None:
            return self.refuse("the portfolio cannot be valued, so the drawdown cannot be checked")
        drawdown = ctx.risk.drawdown_pct or 0.0
        if drawdown >= self.config.max_drawdown_pct:
            return self.refuse(
                f"the portfolio is {drawdown:.2f}% below its peak (limit "
                f"{self.config.max_drawdown_pct:g}%): trading is stopped"
            )
        return self.allow()

    def explain(self) -> str:
        return f"{self.title}: stop trading {self.config.max_drawdown_pct:g}% below the peak value"
