"""Backtest throughput: ticks per minute for the mean-reversion strategy, on one core.

The engine replays a synthetic market (defiagent.backtest.synthetic: two Uniswap V2 pools,
a mean-reverting DTKN price) through the same planner, guard, risk rules, price sanity and
exact fills as any backtest. Two runs:

  * in process: the strategy object behind InProcessStrategy, timed apart, so the engine's
    own cost is measured with the strategy's compute excluded (the target: at least
    100,000 ticks per minute). CPU time of this process, so other load on the machine
    does not count; wall time is reported too;
  * sandboxed: the same strategy in its bubblewrap sandbox, as `defiagent backtest` runs
    it (the JSON-lines round trip included), on fewer ticks: wall time.

    .venv/bin/python scripts/bench_backtest.py [--ticks 30000] [--sandboxed 3000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TARGET_TICKS_PER_MINUTE = 100_000


def measure(ticks: int = 30_000, sandboxed: int = 3_000) -> dict[str, Any]:
    import defiagent.operator  # noqa: F401 (import order of the state-crypto modules)
    from defiagent.backtest.engine import run_backtest
    from defiagent.backtest.synthetic import (
        synthetic_allowlist,
        synthetic_config,
        synthetic_history,
    )
    from defiagent.strategy.builtin.mean_reversion import MeanReversion, MeanReversionParams
    from defiagent.strategy.in_process import InProcessStrategy

    with tempfile.TemporaryDirectory(prefix="defiagent-bench-backtest-") as tmp:
        cfg = synthetic_config(Path(tmp))
        allowlist = synthetic_allowlist()
        history = synthetic_history(ticks)
        sc = cfg.strategies[0]
        port = InProcessStrategy(MeanReversion(MeanReversionParams(**sc.params)), name=sc.name)
        r = run_backtest(cfg, history, allowlist=allowlist, port=port)
        engine_cpu = r.engine_cpu_seconds - r.strategy_cpu_seconds
        asked = sum(1 for d in r.decisions if d.error is None)
        out: dict[str, Any] = {
            "ticks": ticks,
            "ticks_strategy_asked": asked,
            "trades": r.metrics.n_trades,
            "cpu_seconds": round(r.engine_cpu_seconds, 3),
            "strategy_cpu_seconds": round(r.strategy_cpu_seconds, 3),
            "engine_ticks_per_minute": round(ticks / engine_cpu * 60) if engine_cpu else None,
            "total_ticks_per_minute_cpu": round(ticks / r.engine_cpu_seconds * 60),
            "total_ticks_per_minute_wall": round(ticks / r.engine_seconds * 60),
        }
        if sandboxed:
            small = synthetic_history(sandboxed)
            s = run_backtest(cfg, small, allowlist=allowlist)
            out["sandboxed"] = {
                "ticks": sandboxed,
                "wall_seconds": round(s.engine_seconds, 3),
                "ticks_per_minute_wall": round(sandboxed / s.engine_seconds * 60),
                "engine_cpu_seconds": round(s.engine_cpu_seconds, 3),
            }
        out["target_ticks_per_minute"] = TARGET_TICKS_PER_MINUTE
        out["met"] = bool(
            out["engine_ticks_per_minute"]
            and out["engine_ticks_per_minute"] >= TARGET_TICKS_PER_MINUTE
        )
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=30_000)
    parser.add_argument("--sandboxed", type=int, default=3_000)
    args = parser.parse_args()
    print(json.dumps(measure(args.ticks, args.sandboxed), indent=2))


if __name__ == "__main__":
    main()
