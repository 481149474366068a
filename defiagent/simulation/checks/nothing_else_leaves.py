"""No asset leaves the agent unless the plan names it."""

from __future__ import annotations

from eth_utils import to_checksum_address

from defiagent.allowlist.models import Severity
from defiagent.decisions import Verdict
from defiagent.execution.models import PlannedCall
from defiagent.simulation.checks.base import CheckContext, OutcomeCheck
from defiagent.simulation.models import ETH, SimulationOutcome


class NothingElseLeaves(OutcomeCheck):
    id = "nothing-else-leaves"
    description = "No ETH or token leaves the agent except the assets the intent names."
    severity = Severity.CRITICAL
    rationale = (
        "A hijacked strategy or a malicious contract can drain a token the intent never "
        "mentioned (a transferFrom through an old approval, a hidden fee)."
    )

    def check(self, call: PlannedCall, outcome: SimulationOutcome, ctx: CheckContext) -> Verdict:
        named = {ETH if e.token is None else to_checksum_address(e.token) for e in call.expected}
        leaks = [
            f"{ctx.amount(None if asset == ETH else asset, delta)} leaves the agent"
            for asset, delta in sorted(outcome.deltas.items())
            if delta < 0 and asset not in named
        ]
        if leaks:
            return self.refuse("; ".join(leaks) + ", which the intent does not allow")
        return self.allow()
