"""What every overfitting gate is: metadata on the class, its own config section, one `judge`.

A gate looks at a finished backtest (and, when it needs them, at every configuration the
sweep tried, or at fresh backtests it asks for through `GateSubject.evaluate`) and returns
one `GateVerdict`: passed or not, the figure it measured, the threshold from config, and a
sentence a person can act on. A gate that cannot judge (PBO with one configuration) says so
in its verdict (`judged = False`) and passes: nothing was selected, so nothing was overfit
by selection; a gate that fails to measure what it must (a backtest error) fails.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field

from defiagent.backtest.gates.stats import sharpe
from defiagent.backtest.models import BacktestResult


class GateConfig(BaseModel):
    """A gate's own section of agent.toml: [backtest.gates.<section>]."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True, description="judge this gate at all")


C = TypeVar("C", bound=GateConfig)


class GateVerdict(BaseModel):
    """One gate's verdict on one backtest: this crosses into the certificate and JSON."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gate: str  # the gate's id, e.g. "deflated-sharpe"
    title: str
    passed: bool
    judged: bool = True  # False: the gate had nothing to judge, and says why
    figure: float | None = None  # what it measured (None when it could not)
    threshold: float
    comparison: Literal[">=", "<="]  # the figure must be this to the threshold to pass
    sentence: str


class Trial(BaseModel):
    """One configuration tried (by a sweep or by hand): its params and per-tick returns."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    params: dict[str, Any] = {}
    returns: list[float] = []

    @property
    def sharpe(self) -> float:
        return sharpe(self.returns)

    @classmethod
    def of(cls, result: BacktestResult) -> Trial:
        return cls(params=dict(result.params), returns=list(result.returns))


class Evaluator(Protocol):
    """Runs one backtest: params merged over the strategy's, ticks [start, end), with
    `warmup` ticks of history before `start` that are decided on but not traded."""

    def __call__(
        self, params: Mapping[str, Any], start: int, end: int, warmup: int
    ) -> BacktestResult: ...


# Learns params on ticks [start, end) only (a model trained on that window); None: the
# gate chooses among the trials' params by their Sharpe ratio on the window.
Fitter = Callable[[int, int], Mapping[str, Any]]


@dataclass
class GateSubject:
    """Everything a gate may look at.

    result: the backtest being certified (the chosen params over [start, end)).
    trials: every configuration tried, the chosen one included (a sweep's results); empty
        means only `result` was tried.
    grid: the sweep's grid (param -> values in order), for neighbours and walk-forward.
    evaluate: runs more backtests on the same data (walk-forward, warm-up, sensitivity).
    fit: learns params on a window (a model strategy's training), for walk-forward.
    """

    result: BacktestResult
    start: int
    end: int
    trials: Sequence[Trial] = ()
    grid: Mapping[str, Sequence[Any]] | None = None
    evaluate: Evaluator | None = None
    fit: Fitter | None = None
    base_params: Mapping[str, Any] = field(default_factory=dict)  # the strategy's own params
    tried: int = 0  # configurations tried, failed ones included (0: as many as `trials`)

    @property
    def all_trials(self) -> list[Trial]:
        return list(self.trials) if self.trials else [Trial.of(self.result)]

    @property
    def n_tried(self) -> int:
        return max(self.tried, len(self.all_trials))

    @property
    def chosen_params(self) -> dict[str, Any]:
        return {**self.base_params, **self.result.params}


class Gate(ABC, Generic[C]):
    id: ClassVar[str]
    title: ClassVar[str]  # CamelCase name people see, e.g. "DeflatedSharpe"
    description: ClassVar[str]  # one sentence: what it refuses
    threat: ClassVar[str]  # the kind of overfitting it catches
    section: ClassVar[str]  # [backtest.gates.<section>]
    comparison: ClassVar[Literal[">=", "<="]]
    Config: ClassVar[type[GateConfig]] = GateConfig
    config: C

    def __init__(self, config: C | None = None) -> None:
        self.config = config if config is not None else cast(C, self.Config())

    @property
    def enabled(self) -> bool:
        return self.config.enabled

    @property
    @abstractmethod
    def threshold(self) -> float:
        """The configured limit the figure is held against."""

    @abstractmethod
    def judge(self, subject: GateSubject) -> GateVerdict: ...

    def explain(self) -> str:
        return f"{self.title}: {self.description} (figure {self.comparison} {self.threshold:g})"

    # --- verdict helpers ----------------------------------------------------------------

    def holds(self, figure: float) -> bool:
        if not math.isfinite(figure):
            return False
        return figure >= self.threshold if self.comparison == ">=" else figure <= self.threshold

    def measured(self, figure: float, sentence: str) -> GateVerdict:
        return GateVerdict(
            gate=self.id,
            title=self.title,
            passed=self.holds(figure),
            figure=figure if math.isfinite(figure) else None,
            threshold=self.threshold,
            comparison=self.comparison,
            sentence=sentence,
        )

    def failed(self, sentence: str, figure: float | None = None) -> GateVerdict:
        return GateVerdict(
            gate=self.id,
            title=self.title,
            passed=False,
            figure=figure,
            threshold=self.threshold,
            comparison=self.comparison,
            sentence=sentence,
        )

    def not_judged(self, sentence: str) -> GateVerdict:
        return GateVerdict(
            gate=self.id,
            title=self.title,
            passed=True,
            judged=False,
            threshold=self.threshold,
            comparison=self.comparison,
            sentence=sentence,
        )

    @classmethod
    def metadata(cls) -> dict[str, Any]:
        return {
            "id": cls.id,
            "title": cls.title,
            "description": cls.description,
            "threat": cls.threat,
            "config_section": f"backtest.gates.{cls.section}",
            "config": {
                name: {"default": f.default, "description": f.description or ""}
                for name, f in cls.Config.model_fields.items()
            },
        }
