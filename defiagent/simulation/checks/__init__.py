"""Outcome checks: one class per module, listed here. Docs and `rules list` read this registry."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from defiagent.decisions import Decision
from defiagent.execution.models import PlannedCall
from defiagent.guard.base import Described
from defiagent.simulation.checks.approvals_within_plan import ApprovalsWithinPlan
from defiagent.simulation.checks.base import CheckContext, OutcomeCheck
from defiagent.simulation.checks.deltas_within_intent import DeltasWithinIntent
from defiagent.simulation.checks.fork_code_pinned import ForkCodePinned
from defiagent.simulation.checks.gas_under_cap import GasUnderCap
from defiagent.simulation.checks.nothing_else_leaves import NothingElseLeaves
from defiagent.simulation.checks.requote_agrees import RequoteAgrees
from defiagent.simulation.checks.round_trip_sellable import RoundTripConfig, RoundTripSellable
from defiagent.simulation.checks.shares_as_previewed import SharesAsPreviewed
from defiagent.simulation.checks.touched_allowlisted import TouchedAllowlisted
from defiagent.simulation.checks.tx_succeeded import TxSucceeded
from defiagent.simulation.models import SimulationOutcome

ALL_CHECKS: tuple[type[OutcomeCheck], ...] = (
    TxSucceeded,
    DeltasWithinIntent,
    SharesAsPreviewed,
    NothingElseLeaves,
    ApprovalsWithinPlan,
    TouchedAllowlisted,
    ForkCodePinned,
    GasUnderCap,
)
# Checks of a whole plan from a probe the agent runs after the per-call checks (they carry a
# rule's metadata and config section, so the guard registry lists and configures them).
PLAN_CHECKS: tuple[type[Described[Any]], ...] = (RequoteAgrees, RoundTripSellable)


def describe() -> list[dict[str, str]]:
    """Metadata of every check, for `rules list`, docs and the audit log."""
    return [
        {
            "id": c.id,
            "severity": str(c.severity),
            "description": c.description,
            "rationale": c.rationale,
        }
        for c in ALL_CHECKS
    ]


def run_checks(
    call: PlannedCall,
    outcome: SimulationOutcome,
    ctx: CheckContext,
    checks: Sequence[type[OutcomeCheck]] = ALL_CHECKS,
) -> Decision:
    """Every check's verdict; the call may be signed only if `decision.allowed`."""
    verdicts = []
    for check_cls in checks:
        try:
            verdicts.append(check_cls().check(call, outcome, ctx))
        except Exception as exc:  # a crashing check must refuse, never wave the call through
            verdicts.append(
                check_cls().refuse(f"the check could not run ({type(exc).__name__}: {exc})")
            )
    return Decision(verdicts=verdicts)


__all__ = [
    "ALL_CHECKS",
    "PLAN_CHECKS",
    "CheckContext",
    "OutcomeCheck",
    "RoundTripConfig",
    "RoundTripSellable",
    "describe",
    "run_checks",
]
