from __future__ import annotations

from pydantic import Field

from defiagent.decisions import Verdict
from defiagent.guard.base import GuardContext, GuardRequest, Rule, RuleConfig, Severity

GWEI = 10**9


class FeeCapConfig(RuleConfig):
    max_fee_per_gas_gwei: float = Field(default=100, gt=0, description="base fee + tip, gwei")
    max_priority_fee_per_gas_gwei: float = Field(default=3, ge=0, description="tip, gwei")


class FeeCap(Rule[FeeCapConfig]):
    id = "fee-cap"
    title = "FeeCap"
    description = "no transaction while the network fee (base fee + tip) is above the cap"
    threat = "paying a fortune in gas during a fee spike, or a strategy that burns funds on fees"
    severity = Severity.MEDIUM
    section = "fee_cap"
    Config = FeeCapConfig

    def check(self, req: GuardRequest, ctx: GuardContext) -> Verdict:
        if ctx.fees is None:
            return self.refuse("the current network fee was not read")
        tip_cap = int(self.config.max_priority_fee_per_gas_gwei * GWEI)
        fee_cap = int(self.config.max_fee_per_gas_gwei * GWEI)
        tip = ctx.fees.max_priority_fee_per_gas
        if tip > tip_cap:
            return self.refuse(
                f"the tip {tip / GWEI:.2f} gwei is above the cap {tip_cap / GWEI:.2f} gwei"
            )
        total = ctx.fees.base_fee_per_gas + tip
        if total > fee_cap:
            return self.refuse(
                f"base fee + tip is {total / GWEI:.2f} gwei, "
                f"above the cap {fee_cap / GWEI:.2f} gwei"
            )
        return self.allow()

    def explain(self) -> str:
        c = self.config
        return (
            f"{self.title}: wait while base fee + tip > {c.max_fee_per_gas_gwei:g} gwei "
            f"or tip > {c.max_priority_fee_per_gas_gwei:g} gwei"
        )
