"""Every contract the call enters is allowlisted, or a callee its target's entry names."""

from __future__ import annotations

from defiagent.allowlist.models import Severity
from defiagent.decisions import Verdict
from defiagent.execution.models import PlannedCall
from defiagent.simulation.checks.base import CheckContext, OutcomeCheck
from defiagent.simulation.models import SimulationOutcome


class TouchedAllowlisted(OutcomeCheck):
    id = "touched-allowlisted"
    description = (
        "Every contract the transaction enters is an active allowlist entry, the pinned "
        "implementation of an entry that is a proxy, or in the target entry's allowed_callees."
    )
    severity = Severity.CRITICAL
    rationale = (
        "A vetted router can still be steered into an unvetted pool or token (a malicious "
        "path); the trace shows every contract the call would reach."
    )

    def check(self, call: PlannedCall, outcome: SimulationOutcome, ctx: CheckContext) -> Verdict:
        allowlist = ctx.allowlist
        target = allowlist.get(call.target)
        callees = {c.lower() for c in (target.allowed_callees if target else [])}
        implementations = {
            e.proxy.implementation.lower()
            for e in allowlist.entries.values()
            if e.proxy is not None and not e.revoked
        }
        unknown = []
        for address in outcome.touched:
            entry = allowlist.get(address)
            if entry is not None and not entry.revoked:
                continue
            if address.lower() in callees or address.lower() in implementations:
                continue
            unknown.append(address)
        if unknown:
            return self.refuse(
                f"the transaction enters {len(unknown)} contract(s) that are not allowlisted: "
                + ", ".join(unknown)
            )
        return self.allow()
