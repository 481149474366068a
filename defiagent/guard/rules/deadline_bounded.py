from __future__ import annotations

from pydantic import Field

from defiagent.allowlist.models import ArgRole
from defiagent.decisions import Verdict
from defiagent.guard.base import GuardContext, GuardRequest, Rule, RuleConfig, Severity, unreadable
from defiagent.guard.conventions import RoleArgs, is_trade, undeclared


class DeadlineConfig(RuleConfig):
    max_deadline_seconds: int = Field(
        default=1_800, gt=0, description="latest allowed deadline, seconds after the current block"
    )


class DeadlineBounded(Rule[DeadlineConfig]):
    id = "deadline-bounded"
    title = "DeadlineBounded"
    description = (
        "the argument a function's scope declares as its deadline must lie in the near "
        "future, not far ahead or past; a trade that declares no deadline is refused, other "
        "calls are checked only when they declare one; a trade is a call whose function "
        "declares a trade role, or that carries a swap or liquidity intent and is neither an "
        "approval nor a call to a token"
    )
    threat = (
        "a signed swap with a distant deadline can be held back and executed later at a bad price"
    )
    severity = Severity.MEDIUM
    section = "deadline"
    Config = DeadlineConfig

    def check(self, req: GuardRequest, ctx: GuardContext) -> Verdict:
        if req.decoded is None:
            return unreadable(self, req, "the deadline")
        a = RoleArgs.of(req)
        if ArgRole.DEADLINE not in a:
            if is_trade(req):
                return self.refuse(
                    undeclared(req, ArgRole.DEADLINE, "the deadline bound cannot be checked")
                )
            return self.allow()
        deadline = a[ArgRole.DEADLINE]
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
