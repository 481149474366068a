"""Helpers for the operator tests: a fake clock, codes computed from the stored secret."""

from __future__ import annotations

import json
from pathlib import Path

import pyotp

from defiagent.operator.enrolment import FILENAME

START = 1_800_000_000.0  # a fixed moment, at the start of a 30-second step


class Clock:
    def __init__(self, t: float = START) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def stored_secret(state: Path) -> str:
    return json.loads((Path(state) / FILENAME).read_text())["secret"]


def code_at(state: Path, t: float, offset: int = 0) -> str:
    """The code the operator's app shows at time t (from the secret the test reads back)."""
    return pyotp.TOTP(stored_secret(state)).at(t, counter_offset=offset)


def wrong_code(state: Path, t: float) -> str:
    """A six-digit code that is none of the codes accepted around t."""
    good = {code_at(state, t, k) for k in (-1, 0, 1)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in good)


def audit_records(state: Path) -> list[dict]:
    path = Path(state) / "audit.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def strings_in(value) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings_in(v)] + [str(k) for k in value]
    if isinstance(value, list):
        return [s for v in value for s in strings_in(v)]
    return [str(value)]
