from __future__ import annotations

from pydantic import Field

from defiagent.guard.base import GuardContext, RuleConfig, Severity
from defiagent.monitoring.events import LimitUsage
from defiagent.risk.base import PausingRule

WEI = 10**18


class MaxGasConfig(RuleConfig):
    enabled: bool = True
    max_eth: float = Field(default=0.5, gt=0, description="gas paid per window, in ETH")
    window_hours: float = Field(default=24, gt=0, description="sliding window")


class MaxGasPerDay(PausingRule[MaxGasConfig]):
    id = "max-gas"
    title = "MaxGasPerDay"
    description = "pause trading once the gas paid within the window reaches the budget"
    threat = "fees eating the portfolio: a loop of failing or tiny trades, or a fee spike"
    severity = Severity.MEDIUM
    section = "max_gas"
    Config = MaxGasConfig

    def pause_reason(self, ctx: GuardContext) -> str | None:
        spent = ctx.risk.gas_spent_wei / WEI
        if spent >= self.config.max_eth:
            return (
                f"{spent:.6f} ETH of gas paid in the last {self.config.window_hours:g}h "
                f"(budget {self.config.max_eth:g} ETH): trading is paused"
            )
        return None

    def usage(self, ctx: GuardContext) -> LimitUsage | None:
        return LimitUsage(
            rule=self.id, used=ctx.risk.gas_spent_wei / WEI, limit=self.config.max_eth
        )

    def explain(self) -> str:
        c = self.config
        return f"{self.title}: at most {c.max_eth:g} ETH of gas in {c.window_hours:g}h"
