"""Parameter sweeps on Dask: every point of a grid backtested, each one counted as tried.

`defiagent backtest -c agent.toml --data DIR --sweep grid.toml [--scheduler tcp://host:port]`
runs one backtest per point of the grid, on a Dask LocalCluster (worker processes on this
machine) by default or on an existing cluster's scheduler. The grid file:

    strategy = "mean-reversion"        # a [[strategies]] name (default: the first)

    [params]                           # param -> the values to try, in order
    window = [5, 10, 20, 40]
    threshold_bps = [50, 100, 200]

The best point (highest Sharpe ratio; the first on a tie) is the sweep's choice; every
point, those that failed to run included, counts in the deflated Sharpe ratio, the PBO sees
every point's returns, and the sensitivity gate takes the grid's neighbours. A remote
cluster's workers must see the data directory at the same path (a shared filesystem).
"""

from __future__ import annotations

import itertools
import logging
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from defiagent.backtest.gates.base import Trial
from defiagent.backtest.gates.stats import sharpe
from defiagent.backtest.models import BacktestResult
from defiagent.errors import ConfigError, DefiagentError, InfraError, Refused

if TYPE_CHECKING:
    from defiagent.config import AgentConfig

MAX_POINTS = 10_000  # a grid this large is a typo, not a sweep

log = logging.getLogger(__name__)


class SweepGrid(BaseModel):
    """grid.toml: which strategy, and each param's values in order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: str | None = Field(default=None, description="a [[strategies]] name")
    params: dict[str, list[Any]] = Field(description="param -> values to try, in order")

    @field_validator("params")
    @classmethod
    def _values(cls, params: dict[str, list[Any]]) -> dict[str, list[Any]]:
        if not params:
            raise ValueError("name at least one param to sweep")
        for name, values in params.items():
            if not values:
                raise ValueError(f"{name} has no values")
            if len({repr(v) for v in values}) != len(values):
                raise ValueError(f"{name} lists a value twice")
        size = 1
        for values in params.values():
            size *= len(values)
        if size > MAX_POINTS:
            raise ValueError(f"the grid has {size:,} points (at most {MAX_POINTS:,})")
        return params

    def points(self) -> list[dict[str, Any]]:
        names = list(self.params)
        return [
            dict(zip(names, combo, strict=True))
            for combo in itertools.product(*(self.params[n] for n in names))
        ]


def load_grid(path: Path) -> SweepGrid:
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"the sweep grid {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"the sweep grid {path} cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"the sweep grid {path} is not valid TOML: {exc}") from None
    try:
        return SweepGrid.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        why = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"the sweep grid {path}: {where}: {why}") from None


class SweepFailure(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    params: dict[str, Any]
    reason: str


class SweepReport(BaseModel):
    """Every point's backtest, the choice, and where and how fast it ran."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scheduler: str  # "LocalCluster (2 workers)", an address, or "in process"
    workers: int
    seconds: float
    grid: dict[str, list[Any]]
    results: list[BacktestResult]  # in grid order, the failed points left out
    failures: list[SweepFailure] = []

    @property
    def tried(self) -> int:
        return len(self.results) + len(self.failures)

    @property
    def best(self) -> BacktestResult:
        if not self.results:
            reason = self.failures[0].reason if self.failures else "the grid is empty"
            raise Refused(f"no point of the sweep could be backtested ({reason})")
        return max(self.results, key=lambda r: sharpe(r.returns))  # max keeps the first

    @property
    def trials(self) -> list[Trial]:
        return [Trial.of(r) for r in self.results]


# --- the task each worker runs -------------------------------------------------------------

_HISTORIES: dict[Path, Any] = {}  # per worker process: the data is read once


def _history(path: Path) -> Any:
    from defiagent.market.history import MarketHistory

    if path not in _HISTORIES:
        _HISTORIES[path] = MarketHistory.load(path)
    return _HISTORIES[path]


@dataclass(frozen=True)
class BacktestTask:
    """One point's backtest; picklable, so Dask ships it to a worker whole."""

    config: AgentConfig
    data: Path
    strategy: str | None = None
    start: int | None = None
    end: int | None = None
    warmup: int = 0
    allowlist: Any = None  # an ActiveAllowlist; None: read and verified from allowlist_dir

    def __post_init__(self) -> None:
        # Shipped to every worker, maybe on other machines: without the RPC endpoints (a
        # provider's URL often carries its API key, and a backtest reads no chain).
        object.__setattr__(self, "config", without_endpoints(self.config))

    def __call__(self, params: Mapping[str, Any]) -> BacktestResult:
        from defiagent.backtest.engine import run_backtest

        return run_backtest(
            self.config,
            _history(self.data),
            strategy=self.strategy,
            params=dict(params),
            start=self.start,
            end=self.end,
            warmup=self.warmup,
            allowlist=self.allowlist,
        )


NO_RPC = "http://rpc.unused-in-backtests.invalid"


def without_endpoints(config: AgentConfig) -> AgentConfig:
    """`config` with its RPC URLs (primary, quorum, fork upstream) replaced by a dead one."""
    simulation = config.simulation.model_copy(update={"fork_url": None})
    return config.model_copy(update={"rpc_url": NO_RPC, "rpc_urls": [], "simulation": simulation})


def _attempt(
    task: Callable[[Mapping[str, Any]], BacktestResult], params: dict[str, Any]
) -> BacktestResult | SweepFailure:
    """Run one point; a refusal or a bad value for this point is its failure, not the sweep's."""
    try:
        return task(params)
    except DefiagentError as exc:
        return SweepFailure(params=params, reason=exc.message)
    except (ValueError, ValidationError) as exc:
        return SweepFailure(params=params, reason=str(exc).splitlines()[0])


# --- running a grid --------------------------------------------------------------------------


def run_in_process(
    points: Sequence[dict[str, Any]],
    task: Callable[[Mapping[str, Any]], BacktestResult],
    grid: Mapping[str, list[Any]] | None = None,
) -> SweepReport:
    """The same sweep, one point after another here (the baseline for the speed-up)."""
    start = time.perf_counter()
    outcomes = [_attempt(task, p) for p in points]
    return _report("in process", 1, time.perf_counter() - start, grid, outcomes)


def run_sweep(
    points: Sequence[dict[str, Any]],
    task: Callable[[Mapping[str, Any]], BacktestResult],
    *,
    grid: Mapping[str, list[Any]] | None = None,
    scheduler: str | None = None,
    workers: int = 2,
    on_result: Callable[[BacktestResult | SweepFailure], None] | None = None,
) -> SweepReport:
    """Backtest every point on Dask; `on_result` is called as each one finishes."""
    from distributed import Client, LocalCluster, as_completed

    started = time.perf_counter()
    cluster = None
    try:
        if scheduler:
            client = Client(scheduler, timeout="5s")
            label = scheduler
        else:
            if workers < 1:
                raise ConfigError(f"--workers {workers} must be at least 1")
            cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,  # a backtest is one Python thread and its strategy child
                processes=True,
                dashboard_address=":0",  # no fixed port: several clusters may run side by side
                silence_logs=logging.ERROR,
            )
            client = Client(cluster)
            label = f"LocalCluster ({workers} workers)"
    except (OSError, TimeoutError) as exc:
        raise InfraError(f"cannot reach the Dask scheduler {scheduler}: {exc}") from exc
    except RuntimeError as exc:  # a worker process that did not come up (memory, load)
        raise InfraError(f"the Dask LocalCluster could not start: {exc}") from exc
    try:
        count = len(client.scheduler_info().get("workers") or {})
        futures = [client.submit(_attempt, task, p, pure=False) for p in points]
        index = {f.key: i for i, f in enumerate(futures)}
        outcomes: list[BacktestResult | SweepFailure | None] = [None] * len(points)
        for future in as_completed(futures):
            i = index[future.key]
            try:
                outcome = future.result()
            except Exception as exc:  # the worker died under the task (memory, a signal)
                outcome = SweepFailure(params=points[i], reason=f"the worker failed: {exc}")
            outcomes[i] = outcome
            if on_result is not None:
                on_result(outcome)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    done = [o for o in outcomes if o is not None]
    return _report(label, count, time.perf_counter() - started, grid, done)


def _report(
    label: str,
    workers: int,
    seconds: float,
    grid: Mapping[str, list[Any]] | None,
    outcomes: Sequence[BacktestResult | SweepFailure],
) -> SweepReport:
    return SweepReport(
        scheduler=label,
        workers=workers,
        seconds=seconds,
        grid=dict(grid or {}),
        results=[o for o in outcomes if isinstance(o, BacktestResult)],
        failures=[o for o in outcomes if isinstance(o, SweepFailure)],
    )
