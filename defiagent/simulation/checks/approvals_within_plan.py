"""The agent grants no approval beyond what the plan allows."""

from __future__ import annotations

from eth_utils import to_checksum_address

from defiagent.allowlist.models import Severity
from defiagent.decisions import Verdict
from defiagent.execution.models import PlannedCall
from defiagent.simulation.checks.base import CheckContext, OutcomeCheck
from defiagent.simulation.decode import MAX_UINT
from defiagent.simulation.models import SimulationOutcome


def _key(token: str, spender: str) -> str:
    return f"{to_checksum_address(token)}:{to_checksum_address(spender)}"


class ApprovalsWithinPlan(OutcomeCheck):
    id = "approvals-within-plan"
    description = (
        "Every approval the agent grants is listed in the plan, for the listed spender, "
        "and no larger than the listed amount."
    )
    severity = Severity.CRITICAL
    rationale = "An unlimited or unexpected approval lets the spender take the tokens later."

    def check(self, call: PlannedCall, outcome: SimulationOutcome, ctx: CheckContext) -> Verdict:
        allowed = {}
        for key, cap in call.allowed_approvals.items():
            token, _, spender = key.partition(":")
            allowed[_key(token, spender)] = cap
        problems = []
        for approval in outcome.approvals:
            limit = allowed.get(_key(approval.token, approval.spender))
            amount = (
                "an unlimited amount"
                if approval.allowance == MAX_UINT
                else ctx.amount(approval.token, approval.allowance)
            )
            if limit is None:
                problems.append(
                    f"the call approves {approval.spender} to spend {amount} of "
                    f"{ctx.asset_name(approval.token)}, which the plan does not allow"
                )
            elif approval.allowance > limit:
                problems.append(
                    f"the call approves {approval.spender} to spend {amount}, more than the "
                    f"{ctx.amount(approval.token, limit)} the plan allows"
                )
        if problems:
            return self.refuse("; ".join(problems))
        return self.allow()
