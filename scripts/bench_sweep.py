"""Sweep speed-up on Dask: the same grid backtested one point after another in this process,
then on a two-worker LocalCluster.

The grid is the built-in mean-reversion strategy's window x threshold on a synthetic
market (defiagent.backtest.synthetic, written to Parquet like a recording), each point a
full backtest with the strategy in its sandbox. Reported, not a target: the speed-up is
bounded by the cores the machine has free (2 workers on 2 cores: at best about 2x). The
cluster is started first and its start-up reported on its own; the sweep is timed on it
through its scheduler address, as `--scheduler` would run it.

    .venv/bin/python scripts/bench_sweep.py [--ticks 600] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from distributed import LocalCluster

from defiagent.backtest.sweep import BacktestTask, SweepGrid, run_in_process, run_sweep
from defiagent.backtest.synthetic import synthetic_allowlist, synthetic_config, synthetic_history
from defiagent.market.history import MarketHistory, TickRow, write_history

GRID = {"window": [10, 20, 30, 40], "threshold_bps": [100, 150]}


def save(history: MarketHistory, out: Path) -> MarketHistory:
    """An in-memory history written as a history folder (the rows where a pool changed)."""
    rows = []
    for i, block in enumerate(history.blocks):
        for address, s in history.pools.items():
            if i == 0 or (s.reserve0[i], s.reserve1[i]) != (s.reserve0[i - 1], s.reserve1[i - 1]):
                rows.append(
                    TickRow(
                        block=block,
                        timestamp=history.timestamps[i],
                        base_fee=history.base_fees[i],
                        pool=address,
                        reserve0=s.reserve0[i],
                        reserve1=s.reserve1[i],
                    )
                )
    return write_history(out, history.meta, rows)


def measure(ticks: int = 600, workers: int = 2) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="defiagent-bench-sweep-") as tmp:
        work = Path(tmp)
        data = save(synthetic_history(ticks, seed=2), work / "history")
        assert data.path is not None
        task = BacktestTask(synthetic_config(work), data.path, allowlist=synthetic_allowlist())
        grid = SweepGrid(params=GRID)
        serial = run_in_process(grid.points(), task, grid.params)
        started = time.perf_counter()
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        )
        startup = time.perf_counter() - started
        try:
            parallel = run_sweep(
                grid.points(), task, grid=grid.params, scheduler=cluster.scheduler_address
            )
        finally:
            cluster.close()
    same = [r.returns for r in serial.results] == [r.returns for r in parallel.results]
    return {
        "points": len(grid.points()),
        "ticks_per_point": ticks,
        "in_process_seconds": round(serial.seconds, 2),
        "dask_seconds": round(parallel.seconds, 2),
        "dask_workers": parallel.workers,
        "cluster_startup_seconds": round(startup, 2),
        "speedup": round(serial.seconds / parallel.seconds, 2),
        "same_results": same,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=600)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    print(json.dumps(measure(args.ticks, args.workers), indent=2))


if __name__ == "__main__":
    main()
