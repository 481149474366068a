from __future__ import annotations

from pydantic import Field

from defiagent.decisions import Verdict
from defiagent.guard.base import GuardContext, GuardRequest, Rule, RuleConfig, Severity, unreadable


class DeadlineConfig(RuleConfig):
    max_deadline_seconds: int = Field(
        default=1_800, gt=0, description="latest allowed deadline, seconds after the current block"
    )


class DeadlineBounded(Rule):
    id = "deadline-bounded"
    title = "DeadlineBounded"
    description = "a call's deadline argument must lie in the near future, not far ahead or past"
    threat = (
        "a signed swap with a distant deadline can be held back and executed later at a bad price"
    )
    severity = Severity.MEDIUM
    section = "deadline"
    Config = DeadlineConfig

    def check(self, req: GuardRequest, ctx: GuardContext) -> Verdict:
        if req.decoded is None:
            return unreadable(self, req, "the deadline")
        deadline = req.decoded.args.get("deadline")
        if deadline is None:
            return self.allow()
        now = ctx.block_timestamp or ctx.now
        if deadline <= now:
            return self.refuse(f"the deadline {deadline} has already passed (block time {now})")
        if deadline - now > self.config.max_deadline_seconds:
            return self.refuse(
                f"the deadline is {deadline - now}s ahead, "
                f"more than {self.config.max_deadline_seconds}s"
            )
        return self.allow()

    def explain(self) -> str:
        return f"{self.title}: deadlines at most {self.config.max_deadline_seconds}s ahead"
