"""How the gates re-run backtests on the same data: the evaluator, and a model's fitter.

`replay_hooks(config, history, strategy=...)` returns what `run_gates` needs to replay:
`evaluate` (one more backtest of the strategy, with params merged over its own), and, for
the `model-classifier` built-in, `fit` (the same kind of model trained again on a window
of ticks alone, written to a scratch model file, which the replay then loads: the
walk-forward gate judges the training procedure, not a model that has seen the test).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from defiagent.backtest.gates.base import Evaluator, Fitter
from defiagent.backtest.models import BacktestResult

if TYPE_CHECKING:
    from defiagent.allowlist.models import ActiveAllowlist
    from defiagent.config import AgentConfig
    from defiagent.market.history import MarketHistory

MODEL_BUILTIN = "model-classifier"


@dataclass
class BacktestEvaluator:
    """`Evaluator` over `run_backtest`. Params naming files (`file_params`) are added to
    the strategy's `files` for that run, so a scratch model is readable in its sandbox."""

    config: AgentConfig
    history: MarketHistory
    strategy: str | None = None
    allowlist: ActiveAllowlist | None = None
    file_params: tuple[str, ...] = ()
    port_factory: Any = None  # () -> StrategyPort: an in-process strategy (tests, bench)

    def __call__(
        self, params: Mapping[str, Any], start: int, end: int, warmup: int
    ) -> BacktestResult:
        from defiagent.backtest.engine import pick_strategy, run_backtest

        config = self.config
        extra = [Path(str(params[p])) for p in self.file_params if p in params]
        if extra:
            sc = pick_strategy(config, self.strategy)
            widened = sc.model_copy(update={"files": [*sc.files, *extra]})
            strategies = [widened if s.name == sc.name else s for s in config.strategy_configs()]
            config = config.model_copy(update={"strategies": strategies})
        port = self.port_factory(params) if self.port_factory else None
        return run_backtest(
            config,
            self.history,
            strategy=self.strategy,
            params=dict(params),
            start=start,
            end=end,
            warmup=warmup,
            allowlist=self.allowlist,
            port=port,
        )


@dataclass
class ModelFitter:
    """Trains the strategy's kind of model (its model file's spec) on ticks [lo, hi)."""

    history: MarketHistory
    model_path: Path
    # The scratch models live as long as the fitter (removed when it is collected).
    scratch: tempfile.TemporaryDirectory[str] = field(
        default_factory=lambda: tempfile.TemporaryDirectory(prefix="defiagent-fit-")
    )

    @property
    def workdir(self) -> Path:
        return Path(self.scratch.name)

    def __call__(self, lo: int, hi: int) -> Mapping[str, Any]:
        from defiagent.backtest.training import read_model, train, write_model

        current = read_model(self.model_path)
        model = train(self.history, current.base, current.quote, current.spec, start=lo, end=hi)
        out = self.workdir / f"model-{lo}-{hi}.json"
        write_model(out, model)
        return {"model": str(out)}


def replay_hooks(
    config: AgentConfig,
    history: MarketHistory,
    *,
    strategy: str | None = None,
    allowlist: ActiveAllowlist | None = None,
) -> tuple[Evaluator, Fitter | None]:
    """(evaluate, fit) for `run_gates`; fit is None unless the strategy trains a model."""
    from defiagent.backtest.engine import pick_strategy

    sc = pick_strategy(config, strategy)
    if sc.builtin == MODEL_BUILTIN and "model" in sc.params:
        evaluate = BacktestEvaluator(
            config, history, strategy=sc.name, allowlist=allowlist, file_params=("model",)
        )
        return evaluate, ModelFitter(history, Path(str(sc.params["model"])))
    return BacktestEvaluator(config, history, strategy=sc.name, allowlist=allowlist), None
