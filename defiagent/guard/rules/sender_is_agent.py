from __future__ import annotations

from defiagent.decisions import Verdict
from defiagent.guard.base import GuardContext, GuardRequest, Rule, RuleConfig, Severity


class SenderIsAgent(Rule[RuleConfig]):
    id = "sender-is-agent"
    title = "SenderIsAgent"
    description = "a call is only ever planned from the agent's own account"
    threat = (
        "a call planned for another sender would be simulated and checked "
        "against the wrong balances"
    )
    severity = Severity.CRITICAL

    def check(self, req: GuardRequest, ctx: GuardContext) -> Verdict:
        if req.call.sender.lower() != ctx.agent.lower():
            return self.refuse(
                f"the call is from {req.call.sender}, not from the agent {ctx.agent}"
            )
        return self.allow()
