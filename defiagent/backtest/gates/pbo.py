from __future__ import annotations

from pydantic import Field, field_validator

from defiagent.backtest.gates.base import Gate, GateConfig, GateSubject, GateVerdict
from defiagent.backtest.gates.stats import pbo_cscv


class PboConfig(GateConfig):
    max_pbo: float = Field(
        default=0.3,
        ge=0,
        le=1,
        description="largest probability that the in-sample best ranks in the bottom half "
        "out of sample",
    )
    blocks: int = Field(
        default=16, ge=4, le=20, description="contiguous blocks the ticks are cut into (even)"
    )

    @field_validator("blocks")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError("must be even (half the blocks train, half test)")
        return value


class BacktestOverfitting(Gate[PboConfig]):
    id = "pbo"
    title = "BacktestOverfitting"
    description = (
        "the probability of backtest overfitting (combinatorially symmetric cross-validation "
        "over every configuration tried) must stay low"
    )
    threat = "a configuration that wins in-sample because it fits noise, and loses after"
    section = "pbo"
    comparison = "<="
    Config = PboConfig

    @property
    def threshold(self) -> float:
        return self.config.max_pbo

    def judge(self, subject: GateSubject) -> GateVerdict:
        trials = subject.all_trials
        if len(trials) < 2:
            return self.not_judged(
                "one configuration tried: nothing was selected, so there is no selection to "
                "overfit (a sweep is judged here)"
            )
        lengths = {len(t.returns) for t in trials}
        if len(lengths) != 1:
            return self.failed(
                "the configurations tried cover different ticks "
                f"({min(lengths)} to {max(lengths)} returns), so they cannot be compared"
            )
        ticks = lengths.pop()
        blocks = self.config.blocks
        if ticks < 2 * blocks:
            return self.failed(
                f"{ticks} returns are too few for {blocks} blocks: record a longer history "
                "or lower [backtest.gates.pbo] blocks"
            )
        import numpy as np

        matrix = np.column_stack([t.returns for t in trials])
        pbo, logits = pbo_cscv(matrix, blocks)
        return self.measured(
            pbo,
            f"over {len(logits)} splits of {ticks} ticks, the best in-sample of {len(trials)} "
            f"configurations ranked in the bottom half out of sample {pbo:.0%} of the time "
            f"(limit {self.threshold:.0%})",
        )
