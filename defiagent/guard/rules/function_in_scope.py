from __future__ import annotations

from defiagent.abi_signature import parse_signature
from defiagent.decisions import Verdict
from defiagent.guard.base import GuardContext, GuardRequest, Rule, RuleConfig, Severity
from defiagent.guard.calldata import selector_of


class FunctionInScope(Rule[RuleConfig]):
    id = "function-in-scope"
    title = "FunctionInScope"
    description = (
        "the function must be one the entry allows, the calldata must decode exactly against "
        "its signature, and ETH may only be sent to a payable function"
    )
    threat = (
        "an allowlisted contract called through a dangerous function "
        "(transferOwnership, sweep, multicall)"
    )
    severity = Severity.CRITICAL

    def check(self, req: GuardRequest, ctx: GuardContext) -> Verdict:
        if req.entry is None:
            return self.refuse("no allowlist entry, so no function is in scope")
        if req.function is None:
            try:
                selector = selector_of(req.call.data)
            except ValueError:
                selector = "(none)"
            allowed = ", ".join(f.signature.split("(")[0] for f in req.entry.functions) or "nothing"
            return self.refuse(
                f"function {selector} is not allowed on {req.entry.name} (allowed: {allowed})"
            )
        if parse_signature(req.function.signature).selector != req.function.selector:
            return self.refuse(
                f"the entry for {req.entry.name} is inconsistent: {req.function.signature} "
                f"does not hash to {req.function.selector}"
            )
        if req.decoded is None:
            return self.refuse(req.decode_error or "the calldata does not decode")
        if req.call.value and not req.function.payable:
            return self.refuse(
                f"{req.decoded.function.name} is not payable "
                f"but the call sends {req.call.value} wei"
            )
        return self.allow()
