"""The code that was simulated is the code that was pinned, as the fork itself served it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from defiagent.allowlist.models import AllowlistEntry, Severity
from defiagent.decisions import Verdict
from defiagent.execution.models import PlannedCall
from defiagent.simulation.checks.base import CheckContext, OutcomeCheck
from defiagent.simulation.models import SimulationOutcome


class ForkCodePinned(OutcomeCheck):
    id = "fork-code-pinned"
    description = (
        "Every allowlisted contract the simulated call entered ran its pinned code on the fork "
        "(codehash read on the fork at the simulated block); a proxy ran only its pinned "
        "implementation, with its pinned codehash."
    )
    severity = Severity.CRITICAL
    rationale = (
        "The fork's upstream (simulation.fork_url) can serve other code than the chain the "
        "transaction is sent to; a check of a simulation of other code proves nothing about "
        "the real call."
    )

    def check(self, call: PlannedCall, outcome: SimulationOutcome, ctx: CheckContext) -> Verdict:
        hashes = outcome.fork_codehashes
        if hashes is None:
            return self.refuse(
                "the simulation did not read the code it ran on the fork, so it cannot be "
                "shown to be the pinned code"
            )
        active = [e for e in ctx.allowlist.entries.values() if not e.revoked]
        # pinned implementation (lower-case) -> (proxy entry, pinned implementation codehash)
        behind: dict[str, list[tuple[AllowlistEntry, str]]] = {}
        for e in active:
            if e.proxy is not None:
                pin = (e, e.proxy.implementation_codehash)
                behind.setdefault(e.proxy.implementation.lower(), []).append(pin)
        at = f"at block {outcome.block_number}"
        for address in dict.fromkeys([*outcome.touched, *hashes]):
            entry = ctx.allowlist.get(address)
            found = _lookup(hashes, address)
            if entry is not None and not entry.revoked:
                if found is None:
                    return self.refuse(
                        f"the code of {entry.name} ({entry.address}) on the fork {at} was not read"
                    )
                if found.lower() != entry.codehash.lower():
                    return self.refuse(
                        f"the fork {at} ran code for {entry.name} ({entry.address}) with codehash "
                        f"{found}, not the pinned {entry.codehash}: what was simulated is not "
                        "the approved code"
                    )
                if entry.proxy is not None:
                    pinned = entry.proxy.implementation
                    for used in _lookup(outcome.delegations, address) or []:
                        if used.lower() != pinned.lower():
                            return self.refuse(
                                f"on the fork {at}, proxy {entry.name} ({entry.address}) runs "
                                f"{used}, not its pinned implementation {pinned}"
                            )
            for proxy, want in behind.get(address.lower(), []):
                if found is None or found.lower() != want.lower():
                    return self.refuse(
                        f"the fork {at} ran code for the implementation {address} behind proxy "
                        f"{proxy.name} ({proxy.address}) with codehash {found or 'unread'}, "
                        f"not the pinned {want}"
                    )
        return self.allow()


V = TypeVar("V")


def _lookup(mapping: Mapping[str, V], address: str) -> V | None:
    value = mapping.get(address)
    if value is None:
        low = address.lower()
        value = next((v for k, v in mapping.items() if k.lower() == low), None)
    return value
