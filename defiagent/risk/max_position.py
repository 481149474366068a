from __future__ import annotations

from pydantic import Field

from defiagent.decisions import Verdict
from defiagent.guard.base import GuardContext, GuardRequest, Rule, RuleConfig, Severity


class MaxPositionConfig(RuleConfig):
    enabled: bool = True
    max_position_pct: float = Field(
        default=80.0,
        gt=0,
        le=100,
        description="largest share of the portfolio in one non-numeraire asset",
    )


class MaxPosition(Rule):
    id = "max-position"
    title = "MaxPosition"
    description = (
        "a trade may not leave more than the configured share of the portfolio in one asset"
    )
    threat = "all eggs in one basket: a strategy that concentrates everything in one token"
    severity = Severity.MEDIUM
    group = "risk"
    section = "max_position"
    Config = MaxPositionConfig

    def check(self, req: GuardRequest, ctx: GuardContext) -> Verdict:
        inflows = [d for d in req.call.expected if d.min_delta > 0 and d.token is not None]
        numeraire = ctx.market.numeraire if ctx.market else None
        inflows = [d for d in inflows if d.token != numeraire]
        if not inflows:
            return self.allow()
        total = ctx.risk.value_now
        if not total:
            return self.refuse(
                "the portfolio cannot be valued, so position sizes cannot be checked"
            )
        for d in inflows:
            price = ctx.prices.get(d.token)
            if price is None:
                return self.refuse(f"no sane price for {d.token}, so the position cannot be valued")
            after = ctx.risk.position_values.get(d.token, 0.0) + d.min_delta * price
            share = after / total * 100
            if share > self.config.max_position_pct:
                return self.refuse(
                    f"{d.token} would be {share:.1f}% of the portfolio "
                    f"(limit {self.config.max_position_pct:g}%)"
                )
        return self.allow()

    def explain(self) -> str:
        return (
            f"{self.title}: at most {self.config.max_position_pct:g}% of the portfolio in one asset"
        )
