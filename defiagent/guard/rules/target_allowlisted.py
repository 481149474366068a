from __future__ import annotations

from defiagent.decisions import Verdict
from defiagent.guard.base import GuardContext, GuardRequest, Rule, RuleConfig, Severity


class TargetAllowlisted(Rule[RuleConfig]):
    id = "target-allowlisted"
    title = "TargetAllowlisted"
    description = "the call's target must be an active (verified, unrevoked) allowlist entry"
    threat = "a call to a contract nobody reviewed: a drainer, a fake router, a honeypot token"
    severity = Severity.CRITICAL

    def check(self, req: GuardRequest, ctx: GuardContext) -> Verdict:
        entry = ctx.entry(req.call.target)
        if entry is None:
            return self.refuse(f"{req.call.target} is not on the active allowlist")
        if entry.revoked:
            return self.refuse(f"{entry.name} ({req.call.target}) has been revoked")
        return self.allow()
