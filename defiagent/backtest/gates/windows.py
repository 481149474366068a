"""Returns of one configuration over a window of ticks: from a fresh backtest when the
subject can run one, else cut from the trial that already covers the window."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from defiagent.backtest.gates.base import GateSubject, Trial
from defiagent.errors import DefiagentError


class WindowUnavailable(Exception):
    """The window's returns could not be had; the message says why, in one sentence."""


def trial_for(subject: GateSubject, params: Mapping[str, Any]) -> Trial | None:
    """The trial run with `params` (a trial holds the params it set; the rest are the
    strategy's own, the same for every trial)."""
    return next(
        (
            t
            for t in subject.all_trials
            if all(k in params and params[k] == v for k, v in t.params.items())
        ),
        None,
    )


def cut(subject: GateSubject, trial: Trial, start: int, end: int) -> list[float]:
    """Returns of `trial` (which covers [subject.start, subject.end)) on [start, end)."""
    offset = (subject.end - subject.start) - len(trial.returns)  # returns may skip tick 0
    lo = max(start - subject.start - offset, 0)
    hi = max(end - subject.start - offset, 0)
    return trial.returns[lo:hi]


def fresh(
    subject: GateSubject, params: Mapping[str, Any], start: int, end: int, warmup: int
) -> list[float]:
    if subject.evaluate is None:
        raise WindowUnavailable("no backtest can be run here to measure it")
    try:
        return list(subject.evaluate(params, start, end, warmup).returns)
    except DefiagentError as exc:
        raise WindowUnavailable(f"the backtest with {describe(params)} failed: {exc}") from exc


def window_returns(
    subject: GateSubject, params: Mapping[str, Any], start: int, end: int, warmup: int
) -> list[float]:
    """A fresh backtest of `params` on [start, end), or else the tried trial's cut."""
    if subject.evaluate is not None:
        return fresh(subject, params, start, end, warmup)
    trial = trial_for(subject, params)
    if trial is None:
        raise WindowUnavailable(f"{describe(params)} was not tried and cannot be run here")
    return cut(subject, trial, start, end)


def describe(params: Mapping[str, Any]) -> str:
    if not params:
        return "the configured params"
    return ", ".join(f"{k}={v}" for k, v in sorted(params.items()))
