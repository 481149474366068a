"""The transaction burns no more gas than the configured cap."""

from __future__ import annotations

from defiagent.allowlist.models import Severity
from defiagent.decisions import Verdict
from defiagent.execution.models import PlannedCall
from defiagent.simulation.checks.base import CheckContext, OutcomeCheck
from defiagent.simulation.models import SimulationOutcome


class GasUnderCap(OutcomeCheck):
    id = "gas-under-cap"
    description = "The simulated gas use stays under the configured cap (max_gas)."
    severity = Severity.MEDIUM
    rationale = "A gas-burning contract or a pathological route wastes ETH on every attempt."

    def check(self, call: PlannedCall, outcome: SimulationOutcome, ctx: CheckContext) -> Verdict:
        if outcome.gas_used <= ctx.max_gas:
            return self.allow()
        return self.refuse(
            f"the transaction uses {outcome.gas_used:,} gas on the fork, above the cap of "
            f"{ctx.max_gas:,}"
        )
