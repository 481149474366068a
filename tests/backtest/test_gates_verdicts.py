"""Each gate's verdict on synthetic backtests with known answers, on both sides of its limit."""

from __future__ import annotations

import numpy as np
import pytest

from defiagent.backtest.gates import (
    GATES,
    GatesConfig,
    Trial,
    all_passed,
    build_gates,
    failed_gates,
    run_gates,
)
from defiagent.backtest.gates.base import GateSubject
from defiagent.backtest.gates.deflated_sharpe import DeflatedSharpe, DeflatedSharpeConfig
from defiagent.backtest.gates.pbo import BacktestOverfitting, PboConfig
from defiagent.backtest.gates.sensitivity import ParameterSensitivity, SensitivityConfig
from defiagent.backtest.gates.walk_forward import WalkForward
from defiagent.backtest.gates.warmup import WarmupConfig, WarmupDependence
from tests.backtest.gates_world import World, column_world, noise_matrix, result

TICKS = 1_000


def sweep(matrix: np.ndarray) -> tuple[list[Trial], Trial]:
    trials = [Trial(params={"k": i}, returns=list(matrix[:, i])) for i in range(matrix.shape[1])]
    return trials, max(trials, key=lambda t: t.sharpe)


def subject_of(matrix: np.ndarray, **kw) -> GateSubject:
    trials, best = sweep(matrix)
    return GateSubject(
        result=result(best.returns, best.params),
        start=0,
        end=matrix.shape[0],
        trials=trials,
        grid={"k": list(range(matrix.shape[1]))},
        evaluate=column_world(matrix),
        **kw,
    )


# --- deflated Sharpe ratio ----------------------------------------------------------------


def test_deflated_sharpe_refuses_the_best_of_100_noise_strategies():
    verdict = DeflatedSharpe().judge(subject_of(noise_matrix(TICKS, 100, 0)))
    assert not verdict.passed
    assert verdict.gate == "deflated-sharpe"
    assert verdict.figure is not None
    assert verdict.figure < 0.95
    assert "100 configurations tried" in verdict.sentence


def test_deflated_sharpe_passes_a_planted_edge_among_100():
    matrix = noise_matrix(TICKS, 100, 0)
    matrix[:, 42] += 0.002
    subject = subject_of(matrix)
    assert subject.result.params == {"k": 42}
    verdict = DeflatedSharpe().judge(subject)
    assert verdict.passed
    assert verdict.figure > 0.99


def test_deflated_sharpe_threshold_on_both_sides_and_counting_every_trial():
    matrix = noise_matrix(TICKS, 100, 0)
    figure = DeflatedSharpe().judge(subject_of(matrix)).figure
    assert figure is not None
    above = DeflatedSharpe(DeflatedSharpeConfig(min_dsr=figure - 1e-6))
    below = DeflatedSharpe(DeflatedSharpeConfig(min_dsr=figure + 1e-6))
    assert above.judge(subject_of(matrix)).passed
    assert not below.judge(subject_of(matrix)).passed
    # Hiding the other 99 tries (reporting the winner alone) is what deflation exists for:
    # the same returns, counted as one configuration, look significant.
    best = subject_of(matrix).result
    alone = DeflatedSharpe().judge(GateSubject(result=best, start=0, end=TICKS))
    assert alone.figure > figure


def test_deflated_sharpe_fails_a_backtest_too_short_to_judge():
    verdict = DeflatedSharpe().judge(GateSubject(result=result([0.01] * 10), start=0, end=10))
    assert not verdict.passed
    assert "only 10 returns" in verdict.sentence


# --- probability of backtest overfitting --------------------------------------------------


def pbo_gate(**kw) -> BacktestOverfitting:
    return BacktestOverfitting(PboConfig(blocks=10, **kw))


def test_pbo_refuses_selection_among_noise_and_passes_a_planted_edge():
    noise = noise_matrix(400, 30, 1)
    refused = pbo_gate().judge(subject_of(noise))
    assert not refused.passed
    assert refused.figure > 0.3
    planted = noise.copy()
    planted[:, 7] += 0.004
    assert pbo_gate().judge(subject_of(planted)).passed


def test_pbo_threshold_on_both_sides():
    subject = subject_of(noise_matrix(400, 30, 1))
    figure = pbo_gate().judge(subject).figure
    assert pbo_gate(max_pbo=figure).judge(subject).passed
    assert not pbo_gate(max_pbo=figure - 0.01).judge(subject).passed


def test_pbo_with_one_configuration_is_not_judged_and_mismatched_trials_fail():
    one = pbo_gate().judge(GateSubject(result=result([0.01, 0.02] * 50), start=0, end=100))
    assert one.passed
    assert not one.judged
    assert "one configuration" in one.sentence
    uneven = GateSubject(
        result=result([0.0] * 100),
        start=0,
        end=100,
        trials=[Trial(returns=[0.0] * 100), Trial(params={"k": 1}, returns=[0.0] * 90)],
    )
    assert not pbo_gate().judge(uneven).passed
    short = subject_of(noise_matrix(15, 3, 0))
    assert "too few" in pbo_gate().judge(short).sentence


def test_pbo_blocks_must_be_even():
    with pytest.raises(ValueError, match="even"):
        PboConfig(blocks=9)


# --- walk-forward -------------------------------------------------------------------------


def test_walk_forward_passes_an_edge_that_persists_and_refuses_selection_of_noise():
    noise = noise_matrix(TICKS, 20, 3)
    refused = WalkForward().judge(subject_of(noise))
    assert not refused.passed
    assert refused.gate == "walk-forward"
    planted = noise.copy()
    planted[:, 3] += 0.003
    verdict = WalkForward().judge(subject_of(planted))
    assert verdict.passed, verdict.sentence
    assert "1 different choice of params" in verdict.sentence


def test_walk_forward_chooses_on_the_training_window_only():
    """The edge moves from config 2 (first half) to config 9 (second half): the full-range
    winner is judged on windows whose choices were made before the switch was visible."""
    matrix = noise_matrix(TICKS, 12, 4)
    matrix[:500, 2] += 0.006
    matrix[500:, 9] += 0.006
    world = column_world(matrix)
    subject = subject_of(matrix)
    subject.evaluate = world
    WalkForward().judge(subject)
    replayed = [(start, end, params["k"]) for params, start, end, _ in world.calls]
    # Only test windows are replayed, each with the config that won the window before it.
    assert [(s, e) for s, e, _ in replayed] == [(200, 400), (400, 600), (600, 800), (800, 1000)]
    assert replayed[0][2] == 2
    assert replayed[1][2] == 2
    assert replayed[-1][2] == 9


def test_walk_forward_refuses_a_model_that_memorises_its_training_window():
    """`fit` learns on [lo, hi): a memorising model earns only where it was trained; an
    honest one learned a rule that holds everywhere."""
    rng = np.random.default_rng(6)
    noise = rng.standard_normal(TICKS) * 0.01

    def returns(params, ticks):
        if params.get("model") == "honest":
            return noise[ticks] + 0.003
        lo, hi = params["trained_on"]
        inside = (ticks >= lo) & (ticks < hi)
        return np.where(inside, np.abs(noise[ticks]), noise[ticks])

    world = World(TICKS, returns)
    base = result(returns({"model": "honest"}, np.arange(TICKS)), {"model": "honest"})
    honest = GateSubject(
        result=base, start=0, end=TICKS, evaluate=world, fit=lambda lo, hi: {"model": "honest"}
    )
    assert WalkForward().judge(honest).passed
    memo = GateSubject(
        result=base,
        start=0,
        end=TICKS,
        evaluate=world,
        fit=lambda lo, hi: {"model": "memo", "trained_on": (lo, hi)},
    )
    verdict = WalkForward().judge(memo)
    assert not verdict.passed
    assert verdict.figure < 0.5


def test_walk_forward_threshold_on_both_sides_and_when_it_cannot_replay():
    matrix = noise_matrix(TICKS, 20, 3)
    matrix[:, 3] += 0.003
    figure = WalkForward().judge(subject_of(matrix)).figure
    cfg = GatesConfig(walk_forward={"min_efficiency": figure + 0.01})
    assert not build_gates(cfg)[-1].judge(subject_of(matrix)).passed
    cfg = GatesConfig(walk_forward={"min_efficiency": figure - 0.01})
    assert build_gates(cfg)[-1].judge(subject_of(matrix)).passed
    # A model to retrain on each window but no backtest to run it: fails closed.
    lonely = GateSubject(
        result=result(matrix[:, 3], {"k": 3}), start=0, end=TICKS, fit=lambda lo, hi: {}
    )
    failed = WalkForward().judge(lonely)
    assert not failed.passed
    assert "could not be measured" in failed.sentence


# --- warm-up dependence -------------------------------------------------------------------


def price_world() -> World:
    prices = 100 + np.cumsum(np.random.default_rng(8).standard_normal(600))
    return World(600, lambda p, t: np.zeros(len(t)), prices)


def warmup_subject(lookback: int, world: World) -> GateSubject:
    return GateSubject(
        result=result([0.0] * 400, {"lookback": lookback}),
        start=200,
        end=600,
        evaluate=world,
    )


def test_warmup_agrees_when_the_lookback_fits_in_n_ticks():
    verdict = WarmupDependence(WarmupConfig(ticks=20)).judge(warmup_subject(20, price_world()))
    assert verdict.passed
    assert verdict.figure == 0.0
    assert "0 of 200 ticks" in verdict.sentence


def test_warmup_refuses_a_strategy_whose_decisions_depend_on_where_it_started():
    world = price_world()
    gate = WarmupDependence(WarmupConfig(ticks=20))
    for lookback in (0, 25, 35):  # all history, or more than N ticks
        verdict = gate.judge(warmup_subject(lookback, world))
        assert not verdict.passed, lookback
        assert verdict.gate == "warmup"
        assert "first at block" in verdict.sentence
    # Both replays ran on the same window, with N and 2N ticks before it.
    assert {(s, e, w) for _, s, e, w in world.calls} == {(200, 400, 20), (200, 400, 40)}


def test_warmup_threshold_on_both_sides():
    world = price_world()
    figure = WarmupDependence(WarmupConfig(ticks=20)).judge(warmup_subject(25, world)).figure
    assert 0 < figure < 100
    loose = WarmupConfig(ticks=20, max_disagreement_pct=figure)
    tight = WarmupConfig(ticks=20, max_disagreement_pct=figure - 0.1)
    assert WarmupDependence(loose).judge(warmup_subject(25, world)).passed
    assert not WarmupDependence(tight).judge(warmup_subject(25, world)).passed


def test_warmup_fails_when_there_is_no_room_for_2n_ticks():
    subject = warmup_subject(10, price_world())
    verdict = WarmupDependence(WarmupConfig(ticks=400)).judge(subject)
    assert not verdict.passed
    assert "no ticks left" in verdict.sentence


# --- parameter sensitivity ----------------------------------------------------------------


def shaped(edges: dict[int, float]) -> np.ndarray:
    matrix = noise_matrix(TICKS, 10, 11)
    for k, mu in edges.items():
        matrix[:, k] += mu
    return matrix


def test_sensitivity_passes_a_plateau_and_refuses_a_spike_naming_the_neighbour():
    plateau = shaped({3: 0.002, 4: 0.0025, 5: 0.003, 6: 0.0025, 7: 0.002})
    assert ParameterSensitivity().judge(subject_of(plateau)).passed
    spike = shaped({5: 0.003})
    verdict = ParameterSensitivity().judge(subject_of(spike))
    assert not verdict.passed
    assert verdict.gate == "sensitivity"
    assert "next to 5" in verdict.sentence


def test_sensitivity_without_a_grid_moves_each_number_param():
    """A strategy earning only at window=20 exactly; 10% steps move it to 18 and 22."""
    rng = np.random.default_rng(12)
    noise = rng.standard_normal(TICKS) * 0.01

    def returns(params, ticks):
        edge = 0.003 if params["window"] == 20 else 0.0
        return noise[ticks] + edge

    world = World(TICKS, returns)
    subject = GateSubject(
        result=result(returns({"window": 20}, np.arange(TICKS)), {"window": 20}),
        start=0,
        end=TICKS,
        evaluate=world,
        base_params={"window": 20, "name": "x", "flag": True},
    )
    verdict = ParameterSensitivity().judge(subject)
    assert not verdict.passed
    assert sorted(p["window"] for p, *_ in world.calls) == [18, 22]  # strings, bools kept
    wide = GateSubject(
        **{**subject.__dict__, "evaluate": World(TICKS, lambda p, t: noise[t] + 0.003)}
    )
    assert ParameterSensitivity().judge(wide).passed


def test_sensitivity_threshold_on_both_sides_and_a_losing_choice():
    matrix = shaped({4: 0.0015, 5: 0.003, 6: 0.0015})
    figure = ParameterSensitivity().judge(subject_of(matrix)).figure
    assert 0 < figure < 1
    ok = ParameterSensitivity(SensitivityConfig(min_ratio=figure))
    not_ok = ParameterSensitivity(SensitivityConfig(min_ratio=figure + 0.01))
    assert ok.judge(subject_of(matrix)).passed
    assert not not_ok.judge(subject_of(matrix)).passed
    losing = GateSubject(result=result([-0.01, 0.0] * 100), start=0, end=200)
    assert "do not earn" in ParameterSensitivity().judge(losing).sentence


# --- all together -------------------------------------------------------------------------


def test_run_gates_refuses_an_over_tuned_sweep_naming_the_gates():
    matrix = noise_matrix(TICKS, 50, 13)
    trials, best = sweep(matrix)
    verdicts = run_gates(
        result(best.returns, best.params),
        start=0,
        end=TICKS,
        trials=trials,
        grid={"k": list(range(50))},
        evaluate=column_world(matrix),
        config=GatesConfig(warmup={"enabled": False}),
    )
    assert [v.gate for v in verdicts] == ["deflated-sharpe", "pbo", "sensitivity", "walk-forward"]
    failed = {v.gate for v in failed_gates(verdicts)}
    assert {"deflated-sharpe", "walk-forward"} <= failed
    assert not all_passed(verdicts)


def test_run_gates_passes_a_planted_edge_on_a_plateau():
    matrix = noise_matrix(TICKS, 10, 14)
    for k, mu in {3: 0.0025, 4: 0.003, 5: 0.0025}.items():
        matrix[:, k] += mu
    trials, best = sweep(matrix)
    verdicts = run_gates(
        result(best.returns, best.params),
        start=0,
        end=TICKS,
        trials=trials,
        grid={"k": list(range(10))},
        evaluate=column_world(matrix),
        config=GatesConfig(warmup={"enabled": False}, pbo={"blocks": 10}),
    )
    assert all_passed(verdicts), [v.sentence for v in failed_gates(verdicts)]


def test_gates_config_is_strict_and_every_gate_is_listed():
    assert [g.id for g in GATES] == [
        "deflated-sharpe",
        "pbo",
        "warmup",
        "sensitivity",
        "walk-forward",
    ]
    with pytest.raises(ValueError, match="extra"):
        GatesConfig(deflated_sharpe={"min_dsr": 0.9, "typo": 1})
    with pytest.raises(ValueError, match="less than 1"):
        GatesConfig(deflated_sharpe={"min_dsr": 1.5})


def test_the_docs_name_every_gate_and_every_threshold():
    """docs/backtest.md stays true to the registry: each gate's id, section and settings."""
    from pathlib import Path

    docs = (Path(__file__).parents[2] / "docs" / "backtest.md").read_text()
    for gate in GATES:
        assert f"`{gate.id}`" in docs, gate.id
        assert f"[backtest.gates.{gate.section}]" in docs, gate.section
        for name in gate.Config.model_fields:
            if name != "enabled":
                assert f"{name}" in docs, f"{gate.section}.{name}"
