"""Verdicts: what a guard rule or an outcome check says about one request."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, model_validator


class Verdict(BaseModel):
    """One rule's answer. A refusal always carries a reason a person can read."""

    model_config = ConfigDict(frozen=True)

    rule: str  # the rule or check id, e.g. "recipient-is-self"
    allowed: bool
    reason: str = ""

    @model_validator(mode="after")
    def _refusal_says_why(self) -> Verdict:
        if not self.allowed and not self.reason.strip():
            raise ValueError(f"{self.rule} refused without a reason")
        return self

    @classmethod
    def allow(cls, rule: str) -> Verdict:
        return cls(rule=rule, allowed=True)

    @classmethod
    def refuse(cls, rule: str, reason: str) -> Verdict:
        return cls(rule=rule, allowed=False, reason=reason)


class Decision(BaseModel):
    """The combined answer of a set of rules: allowed only if every verdict allows."""

    model_config = ConfigDict(frozen=True)

    verdicts: list[Verdict]

    @property
    def allowed(self) -> bool:
        return all(v.allowed for v in self.verdicts)

    @property
    def refusals(self) -> list[Verdict]:
        return [v for v in self.verdicts if not v.allowed]

    def reason(self) -> str:
        return "; ".join(f"{v.rule}: {v.reason}" for v in self.refusals)
