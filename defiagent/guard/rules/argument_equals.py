from __future__ import annotations

from typing import Any

from defiagent.allowlist.models import ConstraintKind
from defiagent.decisions import Verdict
from defiagent.guard.base import GuardContext, GuardRequest, Rule, RuleConfig, Severity, unreadable


def _same(actual: Any, wanted: str) -> bool:
    if isinstance(actual, bool):
        return str(actual).lower() == wanted.lower()
    if isinstance(actual, int):
        return actual == int(wanted, 0)
    if isinstance(actual, bytes):
        return "0x" + actual.hex() == wanted.lower()
    return str(actual).lower() == wanted.lower()


class ArgumentEquals(Rule[RuleConfig]):
    id = "argument-equals"
    title = "ArgumentEquals"
    description = "arguments the entry pins with an equals constraint must have exactly that value"
    threat = (
        "a fixed parameter (a fee tier, a referral, a mode flag) changed to an unreviewed value"
    )
    severity = Severity.HIGH

    def check(self, req: GuardRequest, ctx: GuardContext) -> Verdict:
        constraints = [
            c
            for c in (req.function.constraints if req.function else [])
            if c.kind == ConstraintKind.EQUALS
        ]
        if not constraints:
            return self.allow()
        if req.decoded is None:
            return unreadable(self, req, "pinned arguments")
        for c in constraints:
            if c.arg not in req.decoded.args or c.value is None:
                return self.refuse(f"the equals constraint on {c.arg!r} cannot be applied")
            try:
                same = _same(req.decoded.args[c.arg], c.value)
            except ValueError:
                same = False
            if not same:
                return self.refuse(
                    f"{c.arg}={req.decoded.args[c.arg]!r}, the entry requires {c.value}"
                )
        return self.allow()
