"""Every configuration ever backtested on the same data counts in the deflated Sharpe ratio,
across runs: splitting a search into many small runs does not escape the deflation."""

from __future__ import annotations

import pytest

from defiagent.backtest.gates import run_gates
from defiagent.backtest.gates.base import GateSubject
from defiagent.backtest.gates.deflated_sharpe import DeflatedSharpe
from defiagent.backtest.gates.trial_log import FILE, TrialLog, params_digest, record_tried
from defiagent.errors import Refused
from tests.backtest.gates_world import noise_matrix, result


def test_distinct_configurations_per_strategy_and_data_are_counted(tmp_path):
    log = TrialLog(tmp_path / FILE)
    assert log.record("mr", "d1", [{"window": 5}, {"window": 10}]) == 2
    assert log.record("mr", "d1", [{"window": 10}, {"window": 20}]) == 3  # 10 again: no new try
    assert log.record("mr", "d2", [{"window": 5}]) == 1  # other data: its own count
    assert log.record("other", "d1", [{"window": 5}]) == 1  # other strategy: its own count
    # Key order does not make a new configuration.
    assert params_digest({"a": 1, "b": 2}) == params_digest({"b": 2, "a": 1})
    assert TrialLog(tmp_path / FILE).tried("mr", "d1") == {
        params_digest({"window": w}) for w in (5, 10, 20)
    }


def test_record_tried_never_counts_fewer_than_this_run_tried(tmp_path):
    # A sweep of 12 points of which 2 failed: 10 on record, 12 tried.
    points = [{"k": i} for i in range(10)]
    assert record_tried(tmp_path, "s", "d", points, tried_now=12) == 12
    assert record_tried(tmp_path, "s", "d", [{"k": 99}]) == 11


def test_a_damaged_log_is_refused_not_skipped(tmp_path):
    path = tmp_path / FILE
    TrialLog(path).record("s", "d", [{"k": 1}])
    with path.open("a") as fh:
        fh.write('{"strategy": "s"}\n')
    with pytest.raises(Refused, match=r"line 2 of .* is not a trial record"):
        TrialLog(path).tried("s", "d")


def test_many_single_runs_are_deflated_like_one_sweep(tmp_path):
    """50 noise configurations backtested one at a time: the luckiest, judged alone, would
    look significant; with the log's count it is deflated as the best of 50."""
    matrix = noise_matrix(1_000, 50, 0)
    best = max(range(50), key=lambda k: matrix[:, k].mean() / matrix[:, k].std())
    for k in range(50):
        tried = record_tried(tmp_path, "s", "data", [{"k": k}])
    assert tried == 50
    chosen = result(matrix[:, best], {"k": best})
    alone = DeflatedSharpe().judge(GateSubject(result=chosen, start=0, end=1_000))
    counted = run_gates(chosen, start=0, end=1_000, tried=tried)[0]
    assert counted.gate == "deflated-sharpe"
    assert "50 configurations tried" in counted.sentence
    assert counted.figure < alone.figure
    assert not counted.passed
