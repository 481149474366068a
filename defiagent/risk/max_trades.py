from __future__ import annotations

from pydantic import Field

from defiagent.guard.base import GuardContext, RuleConfig, Severity
from defiagent.monitoring.events import LimitUsage
from defiagent.risk.base import PausingRule


class MaxTradesConfig(RuleConfig):
    enabled: bool = True
    max_trades: int = Field(default=30, gt=0, description="executed trades per strategy")
    window_seconds: float = Field(default=3600, gt=0, description="sliding window")


class MaxTradesPerWindow(PausingRule[MaxTradesConfig]):
    id = "max-trades"
    title = "MaxTradesPerWindow"
    description = "pause a strategy that has executed too many trades within the window"
    threat = "a runaway strategy churning the portfolio into fees and slippage"
    severity = Severity.MEDIUM
    section = "max_trades"
    Config = MaxTradesConfig

    def pause_reason(self, ctx: GuardContext) -> str | None:
        done, limit = ctx.risk.trades_in_window, self.config.max_trades
        if done >= limit:
            return (
                f"strategy {ctx.strategy!r} made {done} trades in the last "
                f"{self.config.window_seconds:g}s (limit {limit}): paused until the window moves on"
            )
        return None

    def usage(self, ctx: GuardContext) -> LimitUsage | None:
        return LimitUsage(
            rule=self.id, used=ctx.risk.trades_in_window, limit=self.config.max_trades
        )

    def explain(self) -> str:
        c = self.config
        return f"{self.title}: at most {c.max_trades} trades per strategy in {c.window_seconds:g}s"
