from __future__ import annotations

from defiagent.decisions import Verdict
from defiagent.guard.base import GuardContext, GuardRequest, Rule, RuleConfig, Severity
from defiagent.guard.conventions import address_args


class CodehashPinned(Rule[RuleConfig]):
    id = "codehash-pinned"
    title = "CodehashPinned"
    description = (
        "the code at the target, and at every allowlisted contract the call names, must still "
        "hash to the pinned codehash (proxies: pinned implementation and its codehash)"
    )
    threat = (
        "a contract upgraded, self-destructed and redeployed, or re-pointed after it was reviewed"
    )
    severity = Severity.CRITICAL

    def check(self, req: GuardRequest, ctx: GuardContext) -> Verdict:
        involved = [req.call.target]
        if req.decoded is not None:
            involved += [a for _, a in address_args(req.decoded) if ctx.entry(a)]
        at = f"at block {ctx.block_number}" if ctx.block_number else "now"
        for address in dict.fromkeys(involved):
            entry = ctx.entry(address)
            if entry is None:
                continue  # target-allowlisted refuses unknown targets
            observed = ctx.codehashes.get(address)
            if observed is None:
                return self.refuse(f"the code of {entry.name} ({address}) was not read {at}")
            if observed.lower() != entry.codehash.lower():
                return self.refuse(
                    f"the code of {entry.name} ({address}) changed since it was approved: "
                    f"pinned {entry.codehash[:18]}…, found {observed[:18]}… {at}"
                )
            if entry.proxy is not None:
                impl = ctx.implementations.get(address)
                if impl is None:
                    return self.refuse(
                        f"the implementation behind proxy {entry.name} was not read {at}"
                    )
                impl_address, impl_codehash = impl
                if impl_address.lower() != entry.proxy.implementation.lower():
                    return self.refuse(
                        f"proxy {entry.name} now points to {impl_address}, "
                        f"not the approved {entry.proxy.implementation}"
                    )
                if impl_codehash.lower() != entry.proxy.implementation_codehash.lower():
                    return self.refuse(
                        f"the implementation behind {entry.name} changed since it was approved {at}"
                    )
        return self.allow()
