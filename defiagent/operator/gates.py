"""The critical changes that need the operator's code when an operator is enrolled.

Turning the kill switch off, approving the limits and the approval that makes an allowlist
entry active. Turning the kill switch on never needs one: stopping must stay easy.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from defiagent.errors import Refused
from defiagent.monitoring.audit_log import AuditLog
from defiagent.monitoring.interfaces import AuditSink
from defiagent.operator.codes import read_code
from defiagent.operator.second_factor import SecondFactor

AUDIT_FILE = "audit.jsonl"  # the agent's audit log in its state dir (as in agent.runtime)


@contextlib.contextmanager
def state_audit(state_dir: Path | str) -> Iterator[AuditLog]:
    with AuditLog(Path(state_dir) / AUDIT_FILE) as audit:
        yield audit


def require_operator_code(
    state_dir: Path | str,
    action: str,
    *,
    audit: AuditSink,
    otp_stdin: bool = False,
    clock: Callable[[], float] | None = None,
) -> bool:
    """When an operator is enrolled, read a code and verify it for `action` (Refused if not
    good). Returns whether a code was needed. Nothing is read when none is enrolled."""
    factor = SecondFactor(state_dir, audit=audit, clock=clock)
    if not factor.required:
        return False
    factor.verify(read_code(otp_stdin=otp_stdin), action)
    return True


def activation(path: Path, reviewer: str, root: Path) -> tuple[bool, bool]:
    """(active now, active after `reviewer` signs), from the entry's valid approvals."""
    from defiagent.allowlist.approvals import approval_problems
    from defiagent.allowlist.reviewers import load_reviewers
    from defiagent.allowlist.tomlio import read_entry

    reviewers = load_reviewers(root)
    entry = read_entry(path)
    _, valid = approval_problems(entry, reviewers)
    listed = reviewers.get(reviewer)
    after = set(valid) | ({listed.address} if listed is not None else set())
    return len(valid) >= reviewers.threshold, len(after) >= reviewers.threshold


def approval_would_activate(path: Path, reviewer: str, root: Path) -> bool:
    """Would `reviewer`'s approval make the entry active (it is not active yet)?"""
    before, after = activation(path, reviewer, root)
    return after and not before


def approve_with_operator(
    path: Path,
    signer: Any,
    *,
    root: Path,
    state_dir: Path | str,
    otp_stdin: bool = False,
    clock: Callable[[], float] | None = None,
    approve: Callable[..., Any] | None = None,
) -> Any:
    """`approve_entry`, with the operator's code first when this approval activates the entry."""
    from defiagent.allowlist.signatures import signer_address
    from defiagent.allowlist.workflow import approve_entry

    approve = approve or approve_entry
    path = Path(path)
    with state_audit(state_dir) as audit:
        factor = SecondFactor(state_dir, audit=audit, clock=clock)
        action = f"activating allowlist entry {path.name}"
        checked, was_active = False, True
        if factor.required:
            was_active, will_be = activation(path, signer_address(signer), root)
            if will_be and not was_active:
                factor.verify(read_code(otp_stdin=otp_stdin), action)
                checked = True
        before = path.read_bytes()
        result = approve(path, signer, root=root)
        if result.active and not was_active and not checked:
            # The entry changed between the look and the signature (another reviewer):
            # put it back rather than activate it without the operator.
            path.write_bytes(before)
            raise Refused(
                f"{action} needs the operator's code (the entry changed while signing); "
                "approve again"
            )
        return result
