from __future__ import annotations

import statistics

from pydantic import Field

from defiagent.backtest.gates.base import Gate, GateConfig, GateSubject, GateVerdict
from defiagent.backtest.gates.stats import deflated_sharpe, sharpe


class DeflatedSharpeConfig(GateConfig):
    min_dsr: float = Field(
        default=0.95,
        gt=0,
        lt=1,
        description="least probability that the true Sharpe ratio beats the best of the "
        "trials by luck",
    )
    min_ticks: int = Field(default=30, ge=3, description="fewer returns than this: not judged")


class DeflatedSharpe(Gate[DeflatedSharpeConfig]):
    id = "deflated-sharpe"
    title = "DeflatedSharpe"
    description = (
        "the Sharpe ratio must stay significant after deflating it for every configuration "
        "tried, with the returns' skewness and kurtosis"
    )
    threat = "picking the luckiest of many configurations (selection bias, multiple testing)"
    section = "deflated_sharpe"
    comparison = ">="
    Config = DeflatedSharpeConfig

    @property
    def threshold(self) -> float:
        return self.config.min_dsr

    def judge(self, subject: GateSubject) -> GateVerdict:
        returns = subject.result.returns
        if len(returns) < self.config.min_ticks:
            return self.failed(
                f"only {len(returns)} returns (need {self.config.min_ticks}): too short a "
                "backtest to tell skill from luck"
            )
        trials = subject.all_trials
        n = subject.n_tried
        variance = statistics.variance([t.sharpe for t in trials]) if len(trials) > 1 else None
        dsr, sr0 = deflated_sharpe(returns, n, variance)
        sr = sharpe(returns)
        if n == 1:
            luck = "1 configuration tried (against a Sharpe of 0)"
        else:
            luck = f"{n} configurations tried, the best of which would reach {sr0:.4f} by luck"
        return self.measured(
            dsr,
            f"Sharpe {sr:.4f} per tick over {len(returns)} ticks, {luck}: deflated Sharpe "
            f"ratio {dsr:.3f} (needs >= {self.threshold:g})",
        )
