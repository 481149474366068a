"""Building a protocol's scopes: an allowed function with its constraints and roles.

The roles are generated from the function's argument names by the conventions of the
built-in protocols (`defiagent.guard.conventions.conventional_roles`) unless `roles` names
them explicitly (a protocol whose argument names differ), and are signed with the entry.
"""

from __future__ import annotations

from defiagent.abi_signature import parse_signature
from defiagent.allowlist.models import AllowedFunction, ArgConstraint, ArgRole, ConstraintKind
from defiagent.guard.conventions import conventional_roles


def fn(
    signature: str,
    *constraints: tuple[str, ConstraintKind],
    payable: bool = False,
    roles: dict[str, ArgRole] | None = None,
) -> AllowedFunction:
    return AllowedFunction(
        selector=parse_signature(signature).selector,
        signature=signature,
        constraints=[ArgConstraint(arg=a, kind=k) for a, k in constraints],
        payable=payable,
        roles=conventional_roles(signature) if roles is None else roles,
    )
