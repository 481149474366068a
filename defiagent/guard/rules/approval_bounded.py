from __future__ import annotations

from pydantic import Field

from defiagent.allowlist.models import ConstraintKind
from defiagent.decisions import Verdict
from defiagent.guard.base import GuardContext, GuardRequest, Rule, RuleConfig, Severity, unreadable
from defiagent.guard.conventions import (
    ALL_OR_NOTHING_APPROVALS,
    APPROVAL_FUNCTIONS,
    UNLIMITED,
    approval_amount,
    approval_spender,
)


class ApprovalBoundedConfig(RuleConfig):
    max_value: float | None = Field(
        default=1_000.0, gt=0, description="largest approval, valued in the numeraire"
    )


class ApprovalBounded(Rule[ApprovalBoundedConfig]):
    id = "approval-bounded"
    title = "ApprovalBounded"
    description = (
        "an approval must be finite, no larger than what the planned call needs, and within "
        "the entry's max-amount constraints"
    )
    threat = (
        "an unlimited approval lets the spender (or whoever takes it over) drain the token later"
    )
    severity = Severity.CRITICAL
    section = "approvals"
    Config = ApprovalBoundedConfig

    def check(self, req: GuardRequest, ctx: GuardContext) -> Verdict:
        if req.decoded is None:
            return unreadable(self, req, "approval amounts")
        for c in req.function.constraints if req.function else []:
            if c.kind != ConstraintKind.MAX_AMOUNT:
                continue
            value = req.decoded.args.get(c.arg)
            if not isinstance(value, int) or c.value is None:
                return self.refuse(f"max-amount constraint on {c.arg!r} cannot be applied")
            if value > int(c.value, 0):
                return self.refuse(f"{c.arg}={value} is above the entry's limit {c.value}")
        name = req.decoded.function.name
        if name in ALL_OR_NOTHING_APPROVALS:
            return self.refuse(f"{name} grants everything at once and is never allowed")
        if name not in APPROVAL_FUNCTIONS:
            return self.allow()
        amount, spender = approval_amount(req.decoded), approval_spender(req.decoded)
        if amount is None or spender is None:
            return self.refuse(f"cannot find the amount and spender of {name}")
        if amount >= UNLIMITED:
            return self.refuse(
                f"unlimited approval to {spender}; approvals must be for an exact amount"
            )
        planned = req.call.allowed_approvals.get(f"{req.call.target}:{spender}")
        if planned is None or amount > planned:
            return self.refuse(
                f"approval of {amount} to {spender} is more than the plan needs ({planned or 0})"
            )
        if self.config.max_value is not None:
            price = ctx.prices.get(req.call.target)
            if price is None:
                return self.refuse(
                    f"no price for {req.call.target}, so the approval cannot be valued"
                )
            if amount * price > self.config.max_value:
                return self.refuse(
                    f"approval worth {amount * price:,.2f} is above the cap "
                    f"{self.config.max_value:,.2f}"
                )
        return self.allow()

    def explain(self) -> str:
        cap = f", worth at most {self.config.max_value:,.2f}" if self.config.max_value else ""
        return f"{self.title}: approvals only for the exact amount a planned call needs{cap}"
