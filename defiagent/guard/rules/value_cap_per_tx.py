from __future__ import annotations

from pydantic import Field

from defiagent.decisions import Verdict
from defiagent.guard.base import GuardContext, GuardRequest, Rule, RuleConfig, Severity
from defiagent.guard.valuation import no_price, outflow_value


class PerTxValueCapConfig(RuleConfig):
    max_value: float = Field(default=1_000.0, gt=0, description="numeraire units per transaction")


class PerTxValueCap(Rule[PerTxValueCapConfig]):
    id = "value-cap-per-tx"
    title = "PerTxValueCap"
    description = "what one transaction may spend, valued in the numeraire, is capped"
    threat = "a strategy that bets the whole portfolio on one trade"
    severity = Severity.HIGH
    section = "per_tx_value_cap"
    Config = PerTxValueCapConfig

    def check(self, req: GuardRequest, ctx: GuardContext) -> Verdict:
        value, unpriced = outflow_value(req.call, ctx.prices)
        if unpriced:
            return self.refuse(no_price(unpriced, "spend"))
        if value > self.config.max_value:
            return self.refuse(
                f"the call spends {value:,.2f}, above the per-transaction cap "
                f"{self.config.max_value:,.2f}"
            )
        return self.allow()

    def explain(self) -> str:
        return f"{self.title}: at most {self.config.max_value:,.2f} (numeraire) per transaction"
