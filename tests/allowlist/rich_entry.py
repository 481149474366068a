"""A complete entry (every optional field set) that passes every offline check when signed.

Used to show that changing any field of an approved entry is caught.
"""

from __future__ import annotations

import re
from datetime import datetime

from eth_account import Account

from defiagent.allowlist.functions import selector
from defiagent.allowlist.models import (
    AllowedFunction,
    AllowlistEntry,
    ArgConstraint,
    AuditFinding,
    ConstraintKind,
    ProxyInfo,
    Role,
    Severity,
    SlitherSummary,
)
from defiagent.allowlist.workflow import sign_triage
from tests.allowlist.support import make_audit

SWAP = "swapExactTokensForTokens(uint256 amountIn,uint256 amountOutMin,address[] path,address to,uint256 deadline)"
APPROVE = "approve(address spender,uint256 amount)"
PROXY_HASH = "0x" + "11" * 32
IMPL_HASH = "0x" + "22" * 32
FINDING_ID = "f" * 64


def rich_entry(keys, *, chain_id: int = 31337) -> AllowlistEntry:
    address = Account.from_key(b"\x01" * 32).address
    triage = sign_triage(
        FINDING_ID,
        "reentrancy-no-eth",
        IMPL_HASH,
        "guarded by the lock modifier",
        keys.reviewers[0],
    )
    return AllowlistEntry(
        chain_id=chain_id,
        address=address,
        name="Rich router",
        role=Role.ROUTER,
        codehash=PROXY_HASH,
        proxy=ProxyInfo(
            kind="eip1967-beacon",
            admin=Account.from_key(b"\x02" * 32).address,
            beacon=Account.from_key(b"\x03" * 32).address,
            implementation=Account.from_key(b"\x04" * 32).address,
            implementation_codehash=IMPL_HASH,
        ),
        audits=[
            make_audit(
                keys.auditor,
                [PROXY_HASH, IMPL_HASH],
                chain_id=chain_id,
                findings=(
                    AuditFinding(
                        id="L-1", severity=Severity.LOW, title="gas", status="acknowledged"
                    ),
                ),
            )
        ],
        slither=SlitherSummary(
            slither_version="0.11.6",
            solc_version="0.8.37",
            codehash=IMPL_HASH,
            counts={"Medium": 1, "Low": 2},
            failing=[FINDING_ID],
            triaged=[triage],
            result_sha256="cd" * 32,
            source_match="full",
            sources_digest="ef" * 32,
        ),
        functions=[
            AllowedFunction(
                selector=selector(SWAP),
                signature=SWAP,
                constraints=[
                    ArgConstraint(arg="path", kind=ConstraintKind.IN_TOKEN_ALLOWLIST),
                    ArgConstraint(arg="to", kind=ConstraintKind.EQUALS_SELF),
                ],
            ),
            AllowedFunction(
                selector=selector(APPROVE),
                signature=APPROVE,
                constraints=[
                    ArgConstraint(arg="spender", kind=ConstraintKind.IN_ALLOWLIST),
                    ArgConstraint(arg="amount", kind=ConstraintKind.MAX_AMOUNT, value=str(10**30)),
                ],
                payable=False,
            ),
        ],
        allowed_callees=[Account.from_key(b"\x05" * 32).address],
        notes="reviewed in PR #1",
        revoked=False,
        revoked_reason=None,
        approvals=[],
    )


def leaf_paths(data, prefix=()):
    """Every leaf of a JSON-like tree, and every non-empty list (to drop an element)."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield from leaf_paths(value, (*prefix, key))
    elif isinstance(data, list):
        if data:
            yield (*prefix, "-drop-")
        for i, value in enumerate(data):
            yield from leaf_paths(value, (*prefix, i))
    else:
        yield prefix


def _other(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if value is None:
        return "set by an attacker"
    if isinstance(value, str):
        if value.startswith("0x") and len(value) in (42, 66, 10, 132):
            flipped = "1" if value[-1] != "1" else "2"
            out = value[:-1] + flipped
            return Account.from_key(b"\x09" * 32).address if len(value) == 42 else out
        swaps = {
            "router": "token",
            "eip1967-beacon": "eip1967",
            "in-token-allowlist": "in-allowlist",
            "in-allowlist": "in-token-allowlist",
            "equals-self": "in-allowlist",
            "max-amount": "equals",
            "low": "informational",
            "acknowledged": "fixed",
            "full": "partial",
        }
        if re.fullmatch(r"[0-9a-f]{64}", value):
            return ("1" if value[0] != "1" else "2") + value[1:]
        if value in swaps:
            return swaps[value]
        if value.isdigit():
            return str(int(value) * 10)
        try:
            datetime.fromisoformat(value)
            return "2001-01-01"
        except ValueError:
            return value + " (edited)"
    raise TypeError(type(value))


def mutate(data: dict, path: tuple) -> dict:
    """A copy of `data` with the value at `path` changed (or, for '-drop-', a list shortened)."""
    import copy

    out = copy.deepcopy(data)
    node = out
    for key in path[:-1]:
        node = node[key]
    last = path[-1]
    if last == "-drop-":
        node.pop()
    elif isinstance(node, dict) and isinstance(node[last], dict):
        node[last]["extra"] = 1
    else:
        node[last] = _other(node[last])
    return out


def tamper_paths() -> list[tuple]:
    class _Keys:
        reviewers = [Account.from_key(b"\x07" * 32)]
        auditor = Account.from_key(b"\x08" * 32)

    data = rich_entry(_Keys()).model_dump(mode="json", exclude={"approvals"})
    data["revoked_reason"] = "x"  # a leaf too (None is left out of the dump otherwise)
    return [p for p in leaf_paths(data) if p != ("revoked_reason",)] + [("revoked_reason",)]
