"""Argument-name conventions the guard applies even where an entry states no constraint.

Allowlist entries carry explicit ArgConstraints; these conventions are the floor beneath
them, so a reviewer who forgets a constraint does not open a hole: an argument named like
a recipient must be the agent, one named like a spender must be allowlisted, one named
like a token must be an allowlisted token.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from defiagent.guard.calldata import DecodedCall

RECIPIENT_ARGS = frozenset(
    {"to", "recipient", "receiver", "dst", "onBehalfOf", "beneficiary", "_to", "_recipient"}
)
SPENDER_ARGS = frozenset({"spender", "guy", "operator", "_spender", "delegatee"})
TOKEN_ARGS = frozenset(
    {"path", "token", "tokenA", "tokenB", "tokenIn", "tokenOut", "asset", "tokens"}
)
APPROVAL_FUNCTIONS = frozenset({"approve", "increaseAllowance", "increaseApproval"})
ALL_OR_NOTHING_APPROVALS = frozenset({"setApprovalForAll"})
UNLIMITED = 2**255  # anything this large is an "infinite" approval in practice


def addresses(value: Any) -> Iterator[str]:
    """Every address in an argument value (a single address or an array of them)."""
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        yield value
    elif isinstance(value, tuple | list):
        for item in value:
            yield from addresses(item)


def address_args(decoded: DecodedCall) -> Iterator[tuple[str, str]]:
    for name, value in decoded.args.items():
        for address in addresses(value):
            yield name, address


def approval_amount(decoded: DecodedCall) -> int | None:
    """The amount an approve-like call grants (its first uint argument)."""
    for type_, name in zip(decoded.function.types, decoded.function.names, strict=True):
        if type_.startswith("uint") and "[" not in type_:
            return int(decoded.args[name])
    return None


def approval_spender(decoded: DecodedCall) -> str | None:
    for name in decoded.function.names:
        if name in SPENDER_ARGS:
            return decoded.args[name]
    for type_, name in zip(decoded.function.types, decoded.function.names, strict=True):
        if type_ == "address":
            return decoded.args[name]
    return None


def short(address: str) -> str:
    return f"{address[:6]}…{address[-4:]}" if len(address) == 42 else address
