from __future__ import annotations

from defiagent.allowlist.models import ConstraintKind, Role
from defiagent.decisions import Verdict
from defiagent.guard.base import GuardContext, GuardRequest, Rule, RuleConfig, Severity, unreadable
from defiagent.guard.conventions import (
    ALL_OR_NOTHING_APPROVALS,
    APPROVAL_FUNCTIONS,
    addresses,
    approval_spender,
)

# Roles whose contracts pull tokens with an allowance: the only ones an approval may name.
SPENDER_ROLES: tuple[Role, ...] = (Role.ROUTER, Role.SPENDER)


def _roles(roles: tuple[Role, ...]) -> str:
    return " or ".join(r.value for r in roles)


class SpenderAllowlisted(Rule[RuleConfig]):
    id = "spender-allowlisted"
    title = "SpenderAllowlisted"
    description = (
        "an approval's spender must be an active allowlist entry with a role that pulls tokens "
        f"({_roles(SPENDER_ROLES)}), never a pool, factory or token; every in-allowlist "
        "argument must be an active allowlist entry"
    )
    threat = (
        "an approval to an attacker's contract, which pulls the tokens whenever it likes, or to "
        "a contract that never needs one (a pair, the factory, a token)"
    )
    severity = Severity.CRITICAL

    def check(self, req: GuardRequest, ctx: GuardContext) -> Verdict:
        if req.decoded is None:
            return unreadable(self, req, "the spender")
        for c in req.function.constraints if req.function else []:
            if c.kind != ConstraintKind.IN_ALLOWLIST:
                continue
            for address in addresses(req.decoded.args.get(c.arg)):
                found = ctx.entry(address)
                if found is None or found.revoked:
                    return self.refuse(f"{c.arg}={address} is not on the active allowlist")
        name = req.decoded.function.name
        if name not in APPROVAL_FUNCTIONS and name not in ALL_OR_NOTHING_APPROVALS:
            return self.allow()
        spender = approval_spender(req.decoded)
        if not isinstance(spender, str) or next(addresses(spender), None) is None:
            # Fail closed: a rule that cannot find what it judges refuses.
            return self.refuse(f"cannot find the spender of {name}, so it cannot be judged")
        entry = ctx.entry(spender)
        if entry is None:
            return self.refuse(f"approval to {spender}, which is not on the active allowlist")
        if entry.revoked:
            return self.refuse(f"approval to {entry.name} ({spender}), which has been revoked")
        if entry.role not in SPENDER_ROLES:
            return self.refuse(
                f"approval to {entry.name} ({spender}), whose role is {entry.role.value}; only "
                f"{_roles(SPENDER_ROLES)} entries may be spenders"
            )
        return self.allow()
