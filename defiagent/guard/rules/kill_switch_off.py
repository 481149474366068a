from __future__ import annotations

from defiagent.decisions import Verdict
from defiagent.guard.base import GuardContext, GuardRequest, Rule, RuleConfig, Severity


class KillSwitchOff(Rule[RuleConfig]):
    id = "kill-switch-off"
    title = "KillSwitchOff"
    description = "refuse every call while the operator's kill switch is on"
    threat = "an operator who sees something wrong must be able to stop all signing at once"
    severity = Severity.CRITICAL

    def check(self, req: GuardRequest, ctx: GuardContext) -> Verdict:
        if ctx.kill_switch_on:
            why = f" ({ctx.kill_switch_reason})" if ctx.kill_switch_reason else ""
            return self.refuse(f"the kill switch is on{why}")
        return self.allow()
