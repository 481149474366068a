"""Every asset the plan names moves no worse than the intent allows."""

from __future__ import annotations

from defiagent.allowlist.models import Severity
from defiagent.decisions import Verdict
from defiagent.execution.models import PlannedCall
from defiagent.simulation.checks.base import CheckContext, OutcomeCheck
from defiagent.simulation.models import ETH, SimulationOutcome


class DeltasWithinIntent(OutcomeCheck):
    id = "deltas-within-intent"
    description = (
        "The agent receives at least the intent's minimum and spends at most its maximum, "
        "asset by asset, as measured on the fork."
    )
    severity = Severity.CRITICAL
    rationale = (
        "Slippage bounds in calldata can be wrong or ignored by a malicious contract; the "
        "measured balance change is what the agent actually gets."
    )

    def check(self, call: PlannedCall, outcome: SimulationOutcome, ctx: CheckContext) -> Verdict:
        problems = []
        for expected in call.expected:
            key = expected.token or ETH
            actual = outcome.deltas.get(key, 0)
            if actual >= expected.min_delta:
                continue
            if expected.min_delta >= 0:
                verb = "loses" if actual < 0 else "receives"
                problems.append(
                    f"the agent {verb} {ctx.amount(expected.token, actual)}, but the intent "
                    f"requires at least {ctx.amount(expected.token, expected.min_delta)}"
                )
            else:
                problems.append(
                    f"the agent spends {ctx.amount(expected.token, actual)}, but the intent allows "
                    f"at most {ctx.amount(expected.token, expected.min_delta)}"
                )
        if problems:
            return self.refuse("; ".join(problems))
        return self.allow()
