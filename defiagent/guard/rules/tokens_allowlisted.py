from __future__ import annotations

from defiagent.allowlist.models import ConstraintKind
from defiagent.decisions import Verdict
from defiagent.guard.base import GuardContext, GuardRequest, Rule, RuleConfig, Severity, unreadable
from defiagent.guard.conventions import TOKEN_ARGS, leaf, token_addresses
from defiagent.guard.packed_path import PathError


class TokensAllowlisted(Rule[RuleConfig]):
    id = "tokens-allowlisted"
    title = "TokensAllowlisted"
    description = (
        "every token a call names (a swap path, packed Uniswap V3 paths included, tokenA/tokenB, "
        "tokenIn/tokenOut, in-token-allowlist arguments, struct fields by their own names) "
        "must be an allowlisted token"
    )
    threat = "a route through a fake or fee-on-transfer token, or buying a honeypot nobody reviewed"
    severity = Severity.HIGH

    def check(self, req: GuardRequest, ctx: GuardContext) -> Verdict:
        if req.decoded is None:
            return unreadable(self, req, "the tokens")
        names = {n for n in req.decoded.args if leaf(n) in TOKEN_ARGS}
        for c in req.function.constraints if req.function else []:
            if c.kind == ConstraintKind.IN_TOKEN_ALLOWLIST:
                if c.arg not in req.decoded.args:
                    return self.refuse(
                        f"the entry constrains argument {c.arg!r}, which the function lacks"
                    )
                names.add(c.arg)
        for name in sorted(names):
            try:
                tokens = list(token_addresses(req.decoded, name))
            except PathError as exc:  # a bytes path that is not one: its tokens are unknown
                return self.refuse(f"{name} is not a token path: {exc}")
            for address in tokens:
                if not ctx.is_token(address):
                    return self.refuse(
                        f"{name} includes {address}, which is not an allowlisted token"
                    )
        return self.allow()
