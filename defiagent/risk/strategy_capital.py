from __future__ import annotations

from pydantic import Field

from defiagent.decisions import Verdict
from defiagent.guard.base import GuardContext, GuardRequest, RuleConfig, Severity
from defiagent.guard.valuation import no_price
from defiagent.monitoring.events import LimitUsage
from defiagent.risk.base import RiskRule, entries, unvalued


class StrategyCapitalConfig(RuleConfig):
    enabled: bool = True
    max_capital_pct: float = Field(
        default=80.0,
        gt=0,
        le=100,
        description="largest share of the portfolio a strategy's open positions may be worth",
    )


class StrategyCapital(RiskRule[StrategyCapitalConfig]):
    id = "strategy-capital"
    title = "StrategyCapital"
    description = "a strategy may not hold positions worth more than its share of the total capital"
    threat = "one strategy (buggy or hijacked) taking over the capital meant for all of them"
    severity = Severity.MEDIUM
    section = "strategy_capital"
    Config = StrategyCapitalConfig

    def check(self, req: GuardRequest, ctx: GuardContext) -> Verdict:
        inflows = [d for d in entries(req, ctx) if d.token is not None]
        if not inflows:
            return self.allow()
        total = ctx.risk.value_now
        if not total:
            return self.refuse(unvalued("the strategy's share", ctx))
        added = 0.0
        for d in inflows:
            assert d.token is not None  # inflows holds token deltas only
            price = ctx.prices.get(d.token)
            if price is None:
                return self.refuse(no_price([d.token], "position"))
            added += d.min_delta * price
        share = (ctx.risk.strategy_exposure + added) / total * 100
        if share > self.config.max_capital_pct:
            return self.refuse(
                f"strategy {ctx.strategy!r} would control {share:.1f}% of the capital "
                f"(limit {self.config.max_capital_pct:g}%)"
            )
        return self.allow()

    def usage(self, ctx: GuardContext) -> LimitUsage | None:
        if not ctx.risk.value_now:
            return None
        share = ctx.risk.strategy_exposure / ctx.risk.value_now * 100
        return LimitUsage(rule=self.id, used=share, limit=self.config.max_capital_pct)

    def explain(self) -> str:
        return (
            f"{self.title}: a strategy's positions may be worth at most "
            f"{self.config.max_capital_pct:g}% of the portfolio"
        )
