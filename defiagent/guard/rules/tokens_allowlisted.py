from __future__ import annotations

from defiagent.allowlist.models import ConstraintKind
from defiagent.decisions import Verdict
from defiagent.guard.base import GuardContext, GuardRequest, Rule, RuleConfig, Severity, unreadable
from defiagent.guard.conventions import TOKEN_ARGS, addresses


class TokensAllowlisted(Rule[RuleConfig]):
    id = "tokens-allowlisted"
    title = "TokensAllowlisted"
    description = (
        "every token a call names (a swap path, tokenA/tokenB, in-token-allowlist arguments) "
        "must be an allowlisted token"
    )
    threat = "a route through a fake or fee-on-transfer token, or buying a honeypot nobody reviewed"
    severity = Severity.HIGH

    def check(self, req: GuardRequest, ctx: GuardContext) -> Verdict:
        if req.decoded is None:
            return unreadable(self, req, "the tokens")
        names = {n for n in req.decoded.args if n in TOKEN_ARGS}
        for c in req.function.constraints if req.function else []:
            if c.kind == ConstraintKind.IN_TOKEN_ALLOWLIST:
                if c.arg not in req.decoded.args:
                    return self.refuse(
                        f"the entry constrains argument {c.arg!r}, which the function lacks"
                    )
                names.add(c.arg)
        for name in sorted(names):
            for address in addresses(req.decoded.args[name]):
                if not ctx.is_token(address):
                    return self.refuse(
                        f"{name} includes {address}, which is not an allowlisted token"
                    )
        return self.allow()
