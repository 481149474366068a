"""M-of-N reviewer approvals over an entry's canonical hash (EIP-712, eth-account)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from defiagent.allowlist.models import AllowlistEntry, Approval
from defiagent.allowlist.reviewers import Reviewers
from defiagent.allowlist.signatures import (
    approval_typed_data,
    recover_typed,
    sign_typed,
    signer_address,
)
from defiagent.errors import Refused


def approval_problems(entry: AllowlistEntry, reviewers: Reviewers) -> tuple[list[str], list[str]]:
    """(problems, valid reviewer addresses). Any approval that does not hold is a problem:
    it means the entry was edited after that reviewer signed, or the signature is forged."""
    typed = approval_typed_data(entry)
    problems: list[str] = []
    valid: list[str] = []
    for a in entry.approvals:
        if a.scheme != "eip712":
            problems.append(f"approval by {a.reviewer} uses {a.scheme}; only eip712 is accepted")
            continue
        reviewer = reviewers.get(a.reviewer)
        if reviewer is None:
            problems.append(f"approval by {a.reviewer}, who is not a listed reviewer")
            continue
        if recover_typed(typed, a.signature) != reviewer.address:
            problems.append(
                f"approval by {reviewer.label} ({a.reviewer}) does not match the entry: "
                "it was edited after signing, or the signature is forged"
            )
            continue
        if reviewer.address in valid:
            problems.append(f"{reviewer.label} approved twice")
            continue
        valid.append(reviewer.address)
    if len(valid) < reviewers.threshold:
        problems.append(f"{len(valid)} valid approval(s), {reviewers.threshold} required")
    return problems, valid


def sign_approval(
    entry: AllowlistEntry, signer: Any, reviewers: Reviewers, *, now: datetime | None = None
) -> Approval:
    address = signer_address(signer)
    if reviewers.get(address) is None:
        raise Refused(f"{address} is not a listed reviewer: it cannot approve entries")
    signature = sign_typed(signer, approval_typed_data(entry))
    signed_at = (now or datetime.now(UTC)).replace(microsecond=0)
    return Approval(reviewer=address, signature=signature, signed_at=signed_at)


def add_approval(
    entry: AllowlistEntry, approval: Approval, reviewers: Reviewers
) -> tuple[AllowlistEntry, list[str]]:
    """The entry with this approval added; void or replaced approvals are dropped (listed)."""
    typed = approval_typed_data(entry)
    kept, dropped = [], []
    for a in entry.approvals:
        if a.reviewer == approval.reviewer:
            dropped.append(f"{a.reviewer}: replaced by the new signature")
        elif recover_typed(typed, a.signature) != a.reviewer or reviewers.get(a.reviewer) is None:
            dropped.append(f"{a.reviewer}: void (the entry changed after it was signed)")
        else:
            kept.append(a)
    return entry.model_copy(update={"approvals": [*kept, approval]}), dropped
