from __future__ import annotations

from pydantic import Field, field_validator

from defiagent.decisions import Verdict
from defiagent.guard.base import GuardContext, GuardRequest, RuleConfig, Severity
from defiagent.guard.valuation import no_price
from defiagent.monitoring.events import LimitUsage
from defiagent.risk.base import RiskRule, entries, unvalued


class MaxPositionConfig(RuleConfig):
    enabled: bool = True
    max_position_pct: float = Field(
        default=80.0,
        gt=0,
        le=100,
        description="largest share of the portfolio in one non-numeraire asset",
    )
    max_value: float | None = Field(
        default=None, gt=0, description="largest value (numeraire) held in any one asset"
    )
    per_asset: dict[str, float] = Field(
        default_factory=dict, description="token address -> largest value held in it"
    )

    @field_validator("per_asset")
    @classmethod
    def _positive(cls, caps: dict[str, float]) -> dict[str, float]:
        bad = [a for a, v in caps.items() if not v > 0]
        if bad:
            raise ValueError(f"caps must be positive ({bad[0]})")
        return {a.lower(): v for a, v in caps.items()}


class MaxPosition(RiskRule[MaxPositionConfig]):
    id = "max-position"
    title = "MaxPosition"
    description = (
        "a trade may not leave more than the configured share of the portfolio, "
        "or more than the configured value, in one asset"
    )
    threat = "all eggs in one basket: a strategy that concentrates everything in one token"
    severity = Severity.MEDIUM
    section = "max_position"
    Config = MaxPositionConfig

    def _cap(self, token: str) -> float | None:
        caps = [c for c in (self.config.max_value, self.config.per_asset.get(token.lower())) if c]
        return min(caps) if caps else None

    def check(self, req: GuardRequest, ctx: GuardContext) -> Verdict:
        inflows = [d for d in entries(req, ctx) if d.token is not None]
        if not inflows:
            return self.allow()
        total = ctx.risk.value_now
        if not total:
            return self.refuse(unvalued("position sizes", ctx))
        for d in inflows:
            assert d.token is not None  # inflows holds token deltas only
            price = ctx.prices.get(d.token)
            if price is None:
                return self.refuse(no_price([d.token], "position"))
            after = ctx.risk.position_values.get(d.token, 0.0) + d.min_delta * price
            share = after / total * 100
            if share > self.config.max_position_pct:
                return self.refuse(
                    f"{d.token} would be {share:.1f}% of the portfolio "
                    f"(limit {self.config.max_position_pct:g}%)"
                )
            cap = self._cap(d.token)
            if cap is not None and after > cap:
                return self.refuse(
                    f"{d.token} would be worth {after:,.2f} (limit {cap:,.2f} in the numeraire)"
                )
        return self.allow()

    def usage(self, ctx: GuardContext) -> LimitUsage | None:
        total = ctx.risk.value_now
        numeraire = ctx.market.numeraire if ctx.market else None
        held = {t: v for t, v in ctx.risk.position_values.items() if t != numeraire}
        if not total or not held:
            return None
        return LimitUsage(
            rule=self.id, used=max(held.values()) / total * 100, limit=self.config.max_position_pct
        )

    def explain(self) -> str:
        c = self.config
        extra = f", at most {c.max_value:,.2f} in value" if c.max_value else ""
        if c.per_asset:
            extra += f", {len(c.per_asset)} per-asset cap(s)"
        return f"{self.title}: at most {c.max_position_pct:g}% of the portfolio in one asset{extra}"
