"""Lookahead is impossible by construction: a strategy deciding at tick i is sent the state
of tick i and nothing after it, and cannot reach the history some other way.

Two attackers: an in-process strategy that searches everything it is handed for any value
that only a later tick holds, and a sandboxed strategy (as run starts it) that tries to
read the history folder itself."""

from __future__ import annotations

import json
from pathlib import Path

from defiagent.backtest.engine import run_backtest
from defiagent.backtest.synthetic import synthetic_allowlist, synthetic_config, synthetic_history
from defiagent.market.history import write_history
from defiagent.strategy.in_process import InProcessStrategy
from tests.backtest.support_engine import history_rows

ALLOWLIST = synthetic_allowlist()


class Peeker:
    """Keeps every integer it was handed, and the block the snapshot says it is."""

    name = "mean-reversion"

    def __init__(self):
        self.seen: list[tuple[int, set[int]]] = []

    def propose(self, market, portfolio):
        found: set[int] = set()

        def walk(x):
            if isinstance(x, dict):
                for v in x.values():
                    walk(v)
            elif isinstance(x, list):
                for v in x:
                    walk(v)
            elif isinstance(x, int) and not isinstance(x, bool):
                found.add(x)
            elif isinstance(x, str) and x.isdigit():
                found.add(int(x))

        walk(market.model_dump(mode="json"))
        walk(portfolio.model_dump(mode="json"))
        self.seen.append((market.block_number, found))
        return []


def test_a_strategy_is_handed_nothing_from_a_later_tick(tmp_path):
    history = synthetic_history(80, seed=9)
    peeker = Peeker()
    cfg = synthetic_config(
        tmp_path, risk={"max_daily_loss": {"enabled": False}, "max_drawdown": {"enabled": False}}
    )
    result = run_backtest(
        cfg, history, allowlist=ALLOWLIST, port=InProcessStrategy(peeker, name="mean-reversion"),
        start=20, end=80, warmup=10,
    )  # fmt: skip
    assert peeker.seen, "the strategy was never asked"
    index = {b: i for i, b in enumerate(history.blocks)}
    for block, values in peeker.seen:
        i = index[block]
        assert 10 <= i < 80  # warm-up and the measured ticks, each once, in order
        past = set()
        for s in history.pools.values():
            for k in range(i + 1):
                past |= {s.reserve0[k], s.reserve1[k], s.cumulative0[k], s.cumulative1[k]}
        future = set()
        for s in history.pools.values():
            for k in range(i + 1, len(history)):
                future |= {s.reserve0[k], s.reserve1[k], s.cumulative0[k], s.cumulative1[k]}
        future |= set(history.blocks[i + 1 :]) | set(history.timestamps[i + 1 :])
        future -= past | set(history.blocks[: i + 1]) | set(history.timestamps[: i + 1])
        assert not values & future, f"tick {i} was handed a later tick's values"
        # And what it was handed is that tick's state, exactly.
        for s in history.pools.values():
            assert {s.reserve0[i], s.reserve1[i]} <= values
    assert [b for b, _ in peeker.seen] == sorted({b for b, _ in peeker.seen})
    assert [d.tick for d in result.decisions] == list(range(20, 80))


PEEKING_STRATEGY = """
import os
from defiagent.strategy.sdk import Strategy, StrategyParams, run


class Params(StrategyParams):
    data: str


class Peek(Strategy):
    Params = Params

    def propose(self, market, portfolio):
        found = []
        for path in (self.p.data, os.path.join(self.p.data, "ticks.parquet"),
                     os.path.join(self.p.data, "meta.json")):
            try:
                if os.path.isdir(path):
                    found.append("listed " + ",".join(sorted(os.listdir(path))))
                else:
                    with open(path, "rb") as fh:
                        found.append(f"read {len(fh.read())} bytes of {path}")
            except OSError as exc:
                found.append(f"blocked: {type(exc).__name__}")
        self.note(f"block {market.block_number}: " + "; ".join(found))
        return []


if __name__ == "__main__":
    run(Peek)
"""


def test_a_sandboxed_strategy_cannot_read_the_history(tmp_path):
    history = synthetic_history(20)
    data = tmp_path / "data"
    write_history(data, history.meta, history_rows(history))
    code = tmp_path / "peek.py"
    code.write_text(PEEKING_STRATEGY)
    cfg = synthetic_config(tmp_path)
    raw = cfg.model_dump(mode="json")
    raw["strategies"] = [{"name": "peek", "path": str(code), "params": {"data": str(data)}}]
    from defiagent.config import parse_config

    cfg = parse_config(raw)
    loaded = type(history).load(data)
    result = run_backtest(cfg, loaded, allowlist=ALLOWLIST)
    notes = [n for d in result.decisions for n in d.notes]
    assert notes, json.dumps([d.model_dump() for d in result.decisions][6:9])[:3000]
    for note in notes:
        assert "read " not in note, note
        assert "listed" not in note, note
        assert note.count("blocked") == 3
    assert Path(data / "ticks.parquet").exists()  # it is there; the sandbox hides it
