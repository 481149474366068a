from __future__ import annotations

from pydantic import Field

from defiagent.decisions import Verdict
from defiagent.guard.base import GuardContext, GuardRequest, Rule, RuleConfig, Severity


class RateLimitConfig(RuleConfig):
    max_intents: int = Field(default=10, gt=0, description="intents per strategy per window")
    window_seconds: int = Field(default=60, gt=0, description="length of the sliding window")


class IntentRateLimit(Rule[RateLimitConfig]):
    id = "intent-rate-limit"
    title = "IntentRateLimit"
    description = "a strategy may only send so many intents per window; the surplus is refused"
    threat = (
        "a flood of requests that drains the account through fees or hides one bad call among many"
    )
    severity = Severity.MEDIUM
    section = "rate_limit"
    Config = RateLimitConfig

    def check(self, req: GuardRequest, ctx: GuardContext) -> Verdict:
        if ctx.intents_in_window > self.config.max_intents:
            return self.refuse(
                f"{ctx.strategy or 'the strategy'} sent {ctx.intents_in_window} intents in "
                f"{self.config.window_seconds}s (limit {self.config.max_intents})"
            )
        return self.allow()

    def explain(self) -> str:
        c = self.config
        return f"{self.title}: at most {c.max_intents} intents per strategy per {c.window_seconds}s"
