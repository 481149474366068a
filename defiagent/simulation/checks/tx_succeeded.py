"""The transaction must not revert on the fork."""

from __future__ import annotations

from defiagent.allowlist.models import Severity
from defiagent.decisions import Verdict
from defiagent.execution.models import PlannedCall
from defiagent.simulation.checks.base import CheckContext, OutcomeCheck
from defiagent.simulation.models import SimulationOutcome

FEE_HINT = (
    "a pool received less than the router sent: a token on the path keeps a fee on "
    "transfers; if its reviewers accept that, its allowlist entry declares it "
    "(transfer_fee_bps) and the agent swaps it with the router's fee-on-transfer functions"
)


class TxSucceeded(OutcomeCheck):
    id = "tx-succeeded"
    description = "The transaction succeeds on a fork of the latest block."
    severity = Severity.HIGH
    rationale = (
        "A reverting transaction only burns gas; a revert also means the plan misread the chain."
    )

    def check(self, call: PlannedCall, outcome: SimulationOutcome, ctx: CheckContext) -> Verdict:
        if outcome.success:
            return self.allow()
        reason = outcome.revert_reason or "reverted without a reason"
        if "UniswapV2: K" in reason:
            # The pair got less than the router computed with: a token on the path keeps a
            # fee on transfers (or rebases). Say so, and how a reviewed fee is declared.
            reason += f" ({FEE_HINT})"
        return self.refuse(
            f"{call.description or call.intent_kind} reverts on the fork at block "
            f"{outcome.block_number}: {reason}"
        )
