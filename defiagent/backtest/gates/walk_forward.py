from __future__ import annotations

import statistics
from typing import Any

from pydantic import Field

from defiagent.backtest.gates.base import Gate, GateConfig, GateSubject, GateVerdict
from defiagent.backtest.gates.stats import sharpe
from defiagent.backtest.gates.windows import (
    WindowUnavailable,
    cut,
    describe,
    fresh,
    window_returns,
)
from defiagent.errors import DefiagentError


class WalkForwardConfig(GateConfig):
    folds: int = Field(default=4, ge=2, le=50, description="training/test steps")
    anchored: bool = Field(
        default=False, description="train on everything before each test window, not one window"
    )
    min_efficiency: float = Field(
        default=0.5,
        ge=0,
        description="out-of-sample Sharpe ratio / in-sample Sharpe ratio, at least",
    )


class WalkForward(Gate[WalkForwardConfig]):
    id = "walk-forward"
    title = "WalkForward"
    description = (
        "parameters chosen (or a model trained) on each training window alone must keep "
        "earning on the window after it"
    )
    threat = "parameters that only describe the past they were tuned on"
    section = "walk_forward"
    comparison = ">="
    Config = WalkForwardConfig

    @property
    def threshold(self) -> float:
        return self.config.min_efficiency

    def windows(self, start: int, end: int) -> list[tuple[int, int, int, int]]:
        """(train start, train end, test start, test end) for each fold."""
        steps = self.config.folds + 1
        edges = [start + (end - start) * i // steps for i in range(steps + 1)]
        out = []
        for i in range(1, len(edges) - 1):
            train_start = start if self.config.anchored else edges[i - 1]
            out.append((train_start, edges[i], edges[i], edges[i + 1]))
        return out

    def _choose(
        self, subject: GateSubject, train: tuple[int, int], warmup: int
    ) -> tuple[dict[str, Any], float]:
        """Params for the fold, chosen on the training window only, and their Sharpe there."""
        lo, hi = train
        if subject.fit is not None:
            try:
                params = {**subject.chosen_params, **subject.fit(lo, hi)}
            except DefiagentError as exc:
                raise WindowUnavailable(f"training on ticks {lo}-{hi} failed: {exc}") from exc
            return params, sharpe(fresh(subject, params, lo, hi, warmup))
        candidates = subject.all_trials
        if len(candidates) == 1:
            params = {**subject.chosen_params}
            return params, sharpe(window_returns(subject, params, lo, hi, warmup))
        # The sweep already ran every candidate over the whole range: rank them on the
        # training window's part of it, as the sweep itself would have on that window.
        scored = [(sharpe(cut(subject, t, lo, hi)), t) for t in candidates]
        best_sharpe, best = max(scored, key=lambda pair: pair[0])
        return {**subject.base_params, **best.params}, best_sharpe

    def judge(self, subject: GateSubject) -> GateVerdict:
        warmup = subject.result.warmup
        if subject.end - subject.start < 10 * (self.config.folds + 1):
            return self.failed(
                f"{subject.end - subject.start} ticks are too few for {self.config.folds} "
                "walk-forward folds"
            )
        in_sample, out_sample, picks = [], [], []
        try:
            for lo, hi, test_lo, test_hi in self.windows(subject.start, subject.end):
                params, is_sharpe = self._choose(subject, (lo, hi), warmup)
                in_sample.append(is_sharpe)
                out_sample.extend(window_returns(subject, params, test_lo, test_hi, warmup))
                picks.append(params)
        except WindowUnavailable as exc:
            return self.failed(f"a walk-forward window could not be measured: {exc}")
        is_mean = statistics.fmean(in_sample)
        oos = sharpe(out_sample)
        changed = len({describe(p) for p in picks})
        if subject.fit is not None:
            chosen = "a model trained on each training window alone"
        else:
            chosen = f"{changed} different choice{'s' if changed != 1 else ''} of params"
        if is_mean <= 0:
            return self.failed(
                f"the params chosen on each training window did not earn even there (mean "
                f"in-sample Sharpe {is_mean:.4f}; out of sample {oos:.4f})",
                figure=None,
            )
        efficiency = oos / is_mean
        return self.measured(
            efficiency,
            f"over {len(in_sample)} folds ({chosen}), out-of-sample Sharpe {oos:.4f} per tick "
            f"vs {is_mean:.4f} in sample: efficiency {efficiency:.2f} "
            f"(needs >= {self.threshold:g})",
        )
