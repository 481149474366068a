"""After simulation: every allowlisted contract the call actually entered still has the
code it was approved with (the guard checked the target and the contracts the calldata
names; the trace shows the rest, e.g. the pair a router swap goes through)."""

from __future__ import annotations

from typing import ClassVar

from defiagent.decisions import Verdict
from defiagent.guard.base import GuardContext, Severity


class TouchedCodePinned:
    id: ClassVar[str] = "touched-code-pinned"
    title: ClassVar[str] = "TouchedCodePinned"
    description: ClassVar[str] = (
        "every allowlisted contract the simulated call entered must still have its pinned "
        "codehash (and proxies their pinned implementation)"
    )
    threat: ClassVar[str] = "a pool or token upgraded after approval, reached through a router"
    severity: ClassVar[Severity] = Severity.CRITICAL

    def check(self, touched: list[str], ctx: GuardContext) -> Verdict:
        for address in touched:
            entry = ctx.entry(address)
            if entry is None:
                continue  # touched-allowlisted (an outcome check) refuses unknown contracts
            observed = ctx.codehashes.get(entry.address)
            if observed is None or observed.lower() != entry.codehash.lower():
                return Verdict.refuse(
                    self.id,
                    f"the call enters {entry.name} ({entry.address}), whose code changed "
                    "since it was approved"
                    if observed
                    else f"the code of {entry.name} ({entry.address}) was not read",
                )
            if entry.proxy is not None:
                impl = ctx.implementations.get(entry.address)
                if impl is None or (impl[0].lower(), impl[1].lower()) != (
                    entry.proxy.implementation.lower(),
                    entry.proxy.implementation_codehash.lower(),
                ):
                    return Verdict.refuse(
                        self.id, f"the implementation behind {entry.name} is not the approved one"
                    )
        return Verdict.allow(self.id)
