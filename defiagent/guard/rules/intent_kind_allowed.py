from __future__ import annotations

from pydantic import Field

from defiagent.decisions import Verdict
from defiagent.guard.base import GuardContext, GuardRequest, Rule, RuleConfig, Severity

DEFAULT_KINDS = [
    "swap-exact-in",
    "swap-exact-out",
    "approve",
    "wrap",
    "unwrap",
    "add-liquidity",
    "remove-liquidity",
]


class IntentKindConfig(RuleConfig):
    allowed_kinds: list[str] = Field(
        default_factory=lambda: list(DEFAULT_KINDS),
        description="intent kinds the strategy may use; raw-call is never allowed",
    )


class IntentKindAllowed(Rule[IntentKindConfig]):
    id = "intent-kind-allowed"
    title = "IntentKindAllowed"
    description = "the strategy may only ask for the configured intent kinds, never a raw call"
    threat = (
        "a strategy that composes its own calldata can hide anything inside an allowed function"
    )
    severity = Severity.CRITICAL
    section = "intent_kinds"
    Config = IntentKindConfig

    def check(self, req: GuardRequest, ctx: GuardContext) -> Verdict:
        kind = req.call.intent_kind
        if kind == "raw-call":
            return self.refuse("the strategy composed a raw call; strategies may only send intents")
        if kind not in self.config.allowed_kinds:
            return self.refuse(f"intent kind {kind!r} is not enabled in [guard.intent_kinds]")
        return self.allow()

    def explain(self) -> str:
        return f"{self.title}: strategies may ask for {', '.join(self.config.allowed_kinds)}"
