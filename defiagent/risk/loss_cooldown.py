from __future__ import annotations

from pydantic import Field

from defiagent.guard.base import GuardContext, RuleConfig, Severity
from defiagent.monitoring.events import LimitUsage
from defiagent.risk.base import PausingRule


class LossCooldownConfig(RuleConfig):
    enabled: bool = True
    max_consecutive_losses: int = Field(
        default=3, gt=0, description="losing closes in a row that start a cooldown"
    )
    cooldown_seconds: float = Field(default=3600, gt=0, description="pause after the last loss")


class LossCooldown(PausingRule[LossCooldownConfig]):
    id = "loss-cooldown"
    title = "LossCooldown"
    description = "pause a strategy for a while after several losing trades in a row"
    threat = "a strategy that doubles down while the market runs against it"
    severity = Severity.MEDIUM
    section = "loss_cooldown"
    Config = LossCooldownConfig

    def pause_reason(self, ctx: GuardContext) -> str | None:
        c, r = self.config, ctx.risk
        if r.consecutive_losses < c.max_consecutive_losses or r.last_loss_at is None:
            return None
        left = r.last_loss_at + c.cooldown_seconds - ctx.now
        if left <= 0:
            return None
        return (
            f"strategy {ctx.strategy!r} closed {r.consecutive_losses} losing trades in a row "
            f"(limit {c.max_consecutive_losses}): cooling down for {left:.0f}s more"
        )

    def usage(self, ctx: GuardContext) -> LimitUsage | None:
        return LimitUsage(
            rule=self.id,
            used=ctx.risk.consecutive_losses,
            limit=self.config.max_consecutive_losses,
        )

    def explain(self) -> str:
        c = self.config
        return (
            f"{self.title}: pause a strategy {c.cooldown_seconds:g}s after "
            f"{c.max_consecutive_losses} losing trades in a row"
        )
