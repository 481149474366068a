"""The Guard: every rule's verdict on one planned call, combined into a Decision.

Pure and in memory: no I/O, no clock, no randomness. A rule that raises is a refusal.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from defiagent.decisions import Decision, Verdict
from defiagent.execution.models import PlannedCall
from defiagent.guard.base import GuardContext, GuardRequest, Rule
from defiagent.guard.registry import build_rules


class Guard:
    # Rules every guard must contain: argument rules skip calls that do not decode because
    # these refuse them, and nothing is ever signed with the kill switch on.
    FLOOR = ("kill-switch-off", "target-allowlisted", "function-in-scope")

    def __init__(
        self, rules: Iterable[Rule[Any]] | None = None, *, require_floor: bool = True
    ) -> None:
        self.rules: list[Rule[Any]] = list(rules) if rules is not None else build_rules()
        if not self.rules:
            raise ValueError("a guard with no rules would allow everything")
        missing = set(self.FLOOR) - {r.id for r in self.rules}
        if require_floor and missing:
            raise ValueError(f"a guard without {', '.join(sorted(missing))} would not fail closed")

    def decide(self, call: PlannedCall, ctx: GuardContext) -> Decision:
        return self.decide_request(GuardRequest.build(call, ctx), ctx)

    def decide_request(self, req: GuardRequest, ctx: GuardContext) -> Decision:
        """`decide` on a call already decoded (the signer process decodes it once, to read
        what it spends, before the rules run)."""
        verdicts: list[Verdict] = []
        for rule in self.rules:
            try:
                verdict = rule.check(req, ctx)
            except Exception as exc:  # a broken rule refuses; it never lets a call through
                verdict = Verdict.refuse(rule.id, f"the rule failed ({type(exc).__name__}: {exc})")
            verdicts.append(verdict)
        return Decision(verdicts=verdicts)

    def explain(self) -> list[str]:
        return [rule.explain() for rule in self.rules]
