from __future__ import annotations

from defiagent.allowlist.models import ConstraintKind
from defiagent.decisions import Verdict
from defiagent.guard.base import GuardContext, GuardRequest, Rule, RuleConfig, Severity, unreadable
from defiagent.guard.conventions import RECIPIENT_ARGS, addresses, leaf


class RecipientIsSelf(Rule[RuleConfig]):
    id = "recipient-is-self"
    title = "RecipientIsSelf"
    description = (
        "every recipient argument (equals-self constraints, and any argument or struct field "
        "named like a recipient: to, recipient, dst, onBehalfOf...) must be the agent's own "
        "address"
    )
    threat = "a hijacked strategy swaps the agent's funds and sends the proceeds to the attacker"
    severity = Severity.CRITICAL

    def check(self, req: GuardRequest, ctx: GuardContext) -> Verdict:
        if req.decoded is None:
            return unreadable(self, req, "the recipient")
        constraints = req.function.constraints if req.function else []
        must_be_self = {c.arg for c in constraints if c.kind == ConstraintKind.EQUALS_SELF}
        pinned_otherwise = {c.arg for c in constraints if c.kind == ConstraintKind.EQUALS}
        # Struct fields by their own name too: `params.recipient` is a recipient.
        named = {n for n in req.decoded.args if leaf(n) in RECIPIENT_ARGS}
        must_be_self |= named - pinned_otherwise
        for name in sorted(must_be_self):
            if name not in req.decoded.args:
                return self.refuse(
                    f"the entry constrains argument {name!r}, which the function lacks"
                )
            for address in addresses(req.decoded.args[name]):
                if address.lower() != ctx.agent.lower():
                    return self.refuse(
                        f"{req.decoded.function.name} sends to {name}={address}, "
                        f"which is not the agent {ctx.agent}"
                    )
        return self.allow()
