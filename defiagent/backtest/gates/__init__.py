"""Overfitting gates: what a backtest must pass before its strategy may go live.

    deflated-sharpe  the Sharpe ratio, deflated for every configuration tried (DSR)
    pbo              probability of backtest overfitting, by CSCV over the configurations
    warmup           decisions after N and after 2N ticks of history must agree
    sensitivity      neighbouring parameters must not collapse the result
    walk-forward     params chosen on each training window alone, judged on the next

One module per gate (metadata on the class, a config section [backtest.gates.<section>]),
listed in `registry.GATES`. `run_gates` judges them all and returns one verdict each; a
backtest is certified only when every verdict passed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from defiagent.backtest.gates.base import (
    Evaluator,
    Fitter,
    Gate,
    GateSubject,
    GateVerdict,
    Trial,
)
from defiagent.backtest.gates.registry import GATES, GatesConfig, build_gates, by_id
from defiagent.backtest.models import BacktestResult

__all__ = [
    "GATES",
    "Evaluator",
    "Fitter",
    "Gate",
    "GateSubject",
    "GateVerdict",
    "GatesConfig",
    "Trial",
    "all_passed",
    "build_gates",
    "by_id",
    "failed_gates",
    "run_gates",
]


def run_gates(
    result: BacktestResult,
    *,
    start: int,
    end: int,
    config: BaseModel | None = None,
    trials: Sequence[Trial | BacktestResult] = (),
    grid: Mapping[str, Sequence[Any]] | None = None,
    evaluate: Evaluator | None = None,
    fit: Fitter | None = None,
    base_params: Mapping[str, Any] | None = None,
    tried: int = 0,
) -> list[GateVerdict]:
    """Judge `result` (the chosen params over ticks [start, end)) with every enabled gate.

    trials: every configuration tried, the chosen one included (a sweep's results); each
        one counts in the deflated Sharpe ratio and the PBO. Empty: only `result` was tried.
    tried: configurations tried in all, those that failed to run included (they count in
        the deflated Sharpe ratio too); 0 means as many as `trials`.
    evaluate: runs another backtest on the same data (see `backtest_evaluator`); the
        warm-up, sensitivity and walk-forward gates fail without it.
    fit: learns params on a window (a model strategy's training) for the walk-forward gate.
    """
    subject = GateSubject(
        result=result,
        start=start,
        end=end,
        trials=[t if isinstance(t, Trial) else Trial.of(t) for t in trials],
        grid=grid,
        evaluate=evaluate,
        fit=fit,
        base_params=dict(base_params or {}),
        tried=tried,
    )
    return [gate.judge(subject) for gate in build_gates(config)]


def all_passed(verdicts: Sequence[GateVerdict]) -> bool:
    return all(v.passed for v in verdicts)


def failed_gates(verdicts: Sequence[GateVerdict]) -> list[GateVerdict]:
    return [v for v in verdicts if not v.passed]
