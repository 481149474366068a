"""The fork's own price of a swap must agree with the snapshot's (defiagent/simulation/requote.py).

A plan-level check like `round-trip-sellable`: it compares the swap's simulated output on the
fork with what the planner quoted from the RPC's reserves. Its limit is the slippage bound
(`[guard.slippage] max_slippage_bps`), so it has no section of its own.
"""

from __future__ import annotations

from typing import ClassVar

from defiagent.guard.base import Described, RuleConfig, Severity


class RequoteAgrees(Described[RuleConfig]):
    id: ClassVar[str] = "requote-agrees"
    title: ClassVar[str] = "RequoteAgrees"
    group: ClassVar[str] = "outcome"
    severity: ClassVar[Severity] = Severity.CRITICAL
    description: ClassVar[str] = (
        "a swap's output simulated on the fork (the pool's code on its storage, same block) "
        "must agree with the planner's quote from the RPC's reserves within the slippage bound"
    )
    threat: ClassVar[str] = (
        "a node that lies about reserves and cumulative prices consistently moves spot and "
        "TWAP together: price sanity passes and the min-out follows the lie, far below the "
        "real quote (free money for a sandwich)"
    )
