"""Sweeps: the grid file, and a grid run on a real two-worker Dask LocalCluster."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

from defiagent.backtest.gates import GatesConfig, run_gates
from defiagent.backtest.models import BacktestResult
from defiagent.backtest.sweep import (
    SweepFailure,
    SweepGrid,
    load_grid,
    run_in_process,
    run_sweep,
)
from defiagent.errors import ConfigError, Refused
from tests.backtest.gates_world import noise_matrix

TICKS = 600


class ColumnTask:
    """A stand-in backtest: config k earns column k; k = 99 is refused like a bad param.
    Picklable (a module-level class), so Dask ships it to the workers."""

    def __init__(self, matrix: np.ndarray, spin: int = 0) -> None:
        self.matrix = matrix
        self.spin = spin  # CPU work per point, to see two workers share it

    def __call__(self, params: Mapping[str, Any]) -> BacktestResult:
        k = int(params["k"])
        if k == 99:
            raise ConfigError("k=99 is not a valid value")
        x = 0
        for i in range(self.spin):
            x += i * i
        return BacktestResult(
            strategy=f"pid-{os.getpid()}",
            params=dict(params),
            returns=[float(r) for r in self.matrix[:, k % self.matrix.shape[1]]],
        )


def grid_file(tmp_path, text: str):
    path = tmp_path / "grid.toml"
    path.write_text(text)
    return path


def test_grid_points_in_order(tmp_path):
    grid = load_grid(
        grid_file(tmp_path, 'strategy = "mr"\n[params]\nwindow = [5, 10]\nthreshold_bps = [50]\n')
    )
    assert grid.strategy == "mr"
    assert grid.points() == [
        {"window": 5, "threshold_bps": 50},
        {"window": 10, "threshold_bps": 50},
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[params\n", "not valid TOML"),
        ("[params]\n", "name at least one param"),
        ("[params]\nwindow = []\n", "window has no values"),
        ("[params]\nwindow = [5, 5]\n", "window lists a value twice"),
        (
            "[params]\na = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\nb = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n"
            "c = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\nd = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\ne = [1, 2]\n",
            "20,000 points",
        ),
        ("strategy = 'x'\nstrat = 1\n[params]\nwindow = [5]\n", "strat"),
        ("params = 3\n", "params"),
    ],
)
def test_bad_grid_files_are_one_sentence_config_errors(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_grid(grid_file(tmp_path, text))
    assert "\n" not in err.value.message


def test_a_missing_grid_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_grid(tmp_path / "nope.toml")


def test_in_process_sweep_counts_failed_points_and_chooses_the_best():
    matrix = noise_matrix(TICKS, 6, 0)
    matrix[:, 4] += 0.004
    grid = SweepGrid(params={"k": [0, 1, 2, 3, 4, 5, 99]})
    report = run_in_process(grid.points(), ColumnTask(matrix), grid.params)
    assert report.tried == 7
    assert len(report.results) == 6
    assert report.failures == [SweepFailure(params={"k": 99}, reason="k=99 is not a valid value")]
    assert report.best.params == {"k": 4}
    nothing = run_in_process([{"k": 99}], ColumnTask(matrix))
    with pytest.raises(Refused, match="no point of the sweep"):
        _ = nothing.best


@pytest.mark.slow
@pytest.mark.xdist_group("dask")
def test_sweep_on_a_two_worker_local_cluster_matches_in_process_and_feeds_the_gates():
    matrix = noise_matrix(TICKS, 12, 1)
    matrix[:, 7] += 0.004
    grid = SweepGrid(params={"k": [*range(12), 99]})
    seen = []
    task = ColumnTask(matrix, spin=300_000)
    report = run_sweep(grid.points(), task, grid=grid.params, workers=2, on_result=seen.append)
    assert report.scheduler == "LocalCluster (2 workers)"
    assert report.workers == 2
    assert len(seen) == 13
    assert report.tried == 13
    # Both worker processes took points, and none of them is this process.
    pids = {r.strategy for r in report.results}
    assert len(pids) == 2
    assert f"pid-{os.getpid()}" not in pids
    local = run_in_process(grid.points(), ColumnTask(matrix), grid.params)
    assert [r.returns for r in report.results] == [r.returns for r in local.results]
    assert report.best.params == {"k": 7}
    verdicts = run_gates(
        report.best,
        start=0,
        end=TICKS,
        trials=report.results,
        tried=report.tried,
        grid=report.grid,
        config=GatesConfig(
            warmup={"enabled": False},
            walk_forward={"enabled": False},
            pbo={"blocks": 10},
        ),
    )
    by_gate = {v.gate: v for v in verdicts}
    assert "13 configurations tried" in by_gate["deflated-sharpe"].sentence
    assert by_gate["deflated-sharpe"].passed
    assert by_gate["pbo"].passed


@pytest.mark.slow
@pytest.mark.xdist_group("dask")
def test_an_unreachable_scheduler_is_an_infrastructure_error():
    from defiagent.errors import InfraError

    where = re.escape("cannot reach the Dask scheduler tcp://127.0.0.1:9")
    with pytest.raises(InfraError, match=where):
        run_sweep([{"k": 0}], ColumnTask(noise_matrix(10, 1, 0)), scheduler="tcp://127.0.0.1:9")


@pytest.mark.slow
@pytest.mark.xdist_group("dask")
def test_a_real_backtest_sweep_on_two_workers_matches_in_process(tmp_path):
    """The engine itself on the workers: each loads the Parquet history by path and runs the
    strategy in its own sandbox; the results are the in-process ones, point for point."""
    from defiagent.backtest.sweep import BacktestTask
    from defiagent.backtest.synthetic import (
        synthetic_allowlist,
        synthetic_config,
        synthetic_history,
    )
    from tests.backtest.gates_world import save

    data = save(synthetic_history(150, seed=5), tmp_path / "history")
    cfg = synthetic_config(tmp_path)
    sc = cfg.strategy_configs()[0]
    patient = sc.limits.model_copy(  # a loaded CI machine must not fail a point by a timeout
        update={"tick_timeout_seconds": 30.0, "start_timeout_seconds": 120.0}
    )
    cfg = cfg.model_copy(update={"strategies": [sc.model_copy(update={"limits": patient})]})
    task = BacktestTask(cfg, data.path, start=20, warmup=20, allowlist=synthetic_allowlist())
    grid = SweepGrid(params={"window": [5, 10], "threshold_bps": [30, 60]})
    report = run_sweep(grid.points(), task, grid=grid.params, workers=2)
    local = run_in_process(grid.points(), task, grid.params)
    assert report.failures == []
    assert local.failures == []
    assert [r.params["window"] for r in report.results] == [5, 5, 10, 10]
    assert [r.returns for r in report.results] == [r.returns for r in local.results]
    assert [r.metrics.n_trades for r in report.results] == [
        r.metrics.n_trades for r in local.results
    ]
    assert {r.data_hash for r in report.results} == {data.content_hash}


def test_the_task_shipped_to_workers_carries_no_rpc_url(tmp_path):
    """A provider's URL often holds its API key; a remote Dask cluster is another machine."""
    import pickle

    from defiagent.backtest.sweep import NO_RPC, BacktestTask
    from defiagent.backtest.synthetic import synthetic_config

    cfg = synthetic_config(tmp_path, rpc_url="https://mainnet.example/v3/SECRETKEY123")
    cfg = cfg.model_copy(
        update={"simulation": cfg.simulation.model_copy(update={"fork_url": "https://f/KEY456"})}
    )
    task = BacktestTask(cfg, tmp_path / "history")
    shipped = pickle.dumps(task)
    assert b"SECRETKEY123" not in shipped
    assert b"KEY456" not in shipped
    assert task.config.rpc_url == NO_RPC
    assert task.config.strategy_configs() == cfg.strategy_configs()
