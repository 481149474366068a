from __future__ import annotations

from defiagent.allowlist.models import ConstraintKind, Role
from defiagent.decisions import Verdict
from defiagent.guard.base import GuardContext, GuardRequest, Rule, Severity, unreadable
from defiagent.guard.conventions import (
    ALL_OR_NOTHING_APPROVALS,
    APPROVAL_FUNCTIONS,
    addresses,
    approval_spender,
)


class SpenderAllowlisted(Rule):
    id = "spender-allowlisted"
    title = "SpenderAllowlisted"
    description = (
        "an approval's spender, and every in-allowlist argument, must be an active allowlist "
        "entry (a spender must not be a plain token)"
    )
    threat = "an approval to an attacker's contract, which pulls the tokens whenever it likes"
    severity = Severity.CRITICAL

    def check(self, req: GuardRequest, ctx: GuardContext) -> Verdict:
        if req.decoded is None:
            return unreadable(self, req, "the spender")
        for c in req.function.constraints if req.function else []:
            if c.kind != ConstraintKind.IN_ALLOWLIST:
                continue
            for address in addresses(req.decoded.args.get(c.arg)):
                if ctx.entry(address) is None:
                    return self.refuse(f"{c.arg}={address} is not on the active allowlist")
        name = req.decoded.function.name
        if name in APPROVAL_FUNCTIONS or name in ALL_OR_NOTHING_APPROVALS:
            spender = approval_spender(req.decoded)
            entry = ctx.entry(spender) if spender else None
            if entry is None or entry.revoked:
                return self.refuse(f"approval to {spender}, which is not on the active allowlist")
            if entry.role in (Role.TOKEN, Role.WRAPPED_NATIVE):
                return self.refuse(f"approval to {entry.name}, a token, which never needs one")
        return self.allow()
