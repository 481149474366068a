from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import Field

from defiagent.backtest.gates.base import Gate, GateConfig, GateSubject, GateVerdict
from defiagent.backtest.gates.stats import sharpe
from defiagent.backtest.gates.windows import (
    WindowUnavailable,
    describe,
    trial_for,
    window_returns,
)


class SensitivityConfig(GateConfig):
    min_ratio: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="worst neighbour's Sharpe ratio / the chosen one's, at least",
    )
    step_pct: float = Field(
        default=10.0,
        gt=0,
        le=100,
        description="without a grid: how far each number param is moved either way",
    )
    params: list[str] = Field(
        default_factory=list,
        description="without a grid: the params to move (default: every number param)",
    )


def _numbers(params: Mapping[str, Any], only: Sequence[str]) -> list[str]:
    names = [
        k
        for k, v in params.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and (not only or k in only)
    ]
    return sorted(names)


def _nudged(value: int | float, step_pct: float) -> list[int | float]:
    if isinstance(value, int):
        delta = max(1, round(abs(value) * step_pct / 100))
        return [value - delta, value + delta]
    step = abs(value) * step_pct / 100 or step_pct / 100
    return [value - step, value + step]


class ParameterSensitivity(Gate[SensitivityConfig]):
    id = "sensitivity"
    title = "ParameterSensitivity"
    description = "moving each parameter to its neighbouring values must not collapse the result"
    threat = "a needle-sharp optimum: the result belongs to one exact value, not to the idea"
    section = "sensitivity"
    comparison = ">="
    Config = SensitivityConfig

    @property
    def threshold(self) -> float:
        return self.config.min_ratio

    def neighbours(self, subject: GateSubject) -> list[tuple[str, dict[str, Any]]]:
        """(what moved, the params with it moved), from the grid or by `step_pct`."""
        chosen = subject.chosen_params
        out = []
        if subject.grid:
            for name, values in subject.grid.items():
                values = list(values)
                if name not in chosen or chosen[name] not in values or len(values) < 2:
                    continue
                i = values.index(chosen[name])
                for j in (i - 1, i + 1):
                    if 0 <= j < len(values):
                        moved = {**chosen, name: values[j]}
                        out.append((f"{name}={values[j]} (next to {chosen[name]})", moved))
            return out
        for name in _numbers(chosen, self.config.params):
            for value in _nudged(chosen[name], self.config.step_pct):
                moved = {**chosen, name: value}
                out.append((f"{name}={value:g} (from {chosen[name]:g})", moved))
        return out

    def judge(self, subject: GateSubject) -> GateVerdict:
        base = sharpe(subject.result.returns)
        if base <= 0:
            return self.failed(
                f"the chosen params do not earn (Sharpe {base:.4f}), so there is no result "
                "for their neighbours to keep"
            )
        moves = self.neighbours(subject)
        if not moves:
            return self.not_judged(
                f"no parameter to move ({describe(subject.chosen_params)}): nothing to compare"
            )
        scored: list[tuple[float, str]] = []
        skipped: list[str] = []
        for label, params in moves:
            tried = trial_for(subject, params) if subject.grid else None
            try:
                if tried is not None:  # the sweep already ran this neighbour
                    returns = tried.returns
                else:
                    returns = window_returns(
                        subject, params, subject.start, subject.end, subject.result.warmup
                    )
            except WindowUnavailable as exc:
                skipped.append(f"{label}: {exc}")
                continue
            scored.append((sharpe(returns) / base, label))
        if not scored:
            return self.failed(f"no neighbour could be measured ({skipped[0]})")
        worst, label = min(scored)
        return self.measured(
            worst,
            f"worst of {len(scored)} neighbours: {label} keeps {worst:.0%} of the chosen "
            f"Sharpe ratio {base:.4f} (needs >= {self.threshold:.0%})",
        )
