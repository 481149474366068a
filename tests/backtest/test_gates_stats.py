"""The gates' statistics on synthetic return series whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from defiagent.backtest.gates.stats import (
    deflated_sharpe,
    expected_max_sharpe,
    moments,
    pbo_cscv,
    probabilistic_sharpe,
    sharpe,
)
from tests.backtest.gates_world import noise_matrix

TICKS, CONFIGS = 1_000, 100


def best_of(matrix: np.ndarray) -> tuple[np.ndarray, list[float]]:
    sharpes = [sharpe(matrix[:, i]) for i in range(matrix.shape[1])]
    return matrix[:, int(np.argmax(sharpes))], sharpes


def test_sharpe_and_moments_of_simple_series():
    assert sharpe([0.01] * 50) == 0.0  # flat: no risk measured, no Sharpe claimed
    assert sharpe([0.02]) == 0.0
    assert sharpe([1.0, -1.0, 1.0, -1.0]) == 0.0
    assert sharpe([1.0, 2.0, 3.0]) == pytest.approx(2.0)  # mean 2, sample sd 1
    skew, kurt = moments(np.random.default_rng(1).standard_normal(200_000))
    assert abs(skew) < 0.02
    assert kurt == pytest.approx(3.0, abs=0.05)


def test_psr_is_one_half_at_its_own_sharpe_and_grows_with_length():
    r = np.random.default_rng(2).standard_normal(500) * 0.01 + 0.001
    assert probabilistic_sharpe(r, sharpe(r)) == pytest.approx(0.5)
    short, long = r[:100], np.tile(r, 4)
    assert probabilistic_sharpe(short) < probabilistic_sharpe(r) < probabilistic_sharpe(long)


def test_fat_left_tails_lower_the_psr():
    """Same mean and sd, but skewed negatively with fat tails: less evidence of skill."""
    rng = np.random.default_rng(3)
    normal = rng.standard_normal(2_000)
    crashy = np.where(rng.random(2_000) < 0.02, -6.0, 0.12) + rng.standard_normal(2_000) * 0.3
    normal = (normal - normal.mean()) / normal.std() * crashy.std() + crashy.mean()
    assert sharpe(normal) == pytest.approx(sharpe(crashy), rel=1e-9)
    assert moments(crashy)[0] < -2
    assert probabilistic_sharpe(crashy) < probabilistic_sharpe(normal)


def test_expected_max_sharpe_matches_the_mean_maximum_of_n_normals():
    assert expected_max_sharpe(1, 1.0) == 0.0
    assert expected_max_sharpe(100, 0.0) == 0.0
    rng = np.random.default_rng(4)
    for n in (10, 100, 1_000):
        simulated = rng.standard_normal((2_000, n)).max(axis=1).mean()
        assert expected_max_sharpe(n, 1.0) == pytest.approx(simulated, rel=0.03)
    assert expected_max_sharpe(100, 4.0) == pytest.approx(2 * expected_max_sharpe(100, 1.0))


@pytest.mark.parametrize("seed", range(5))
def test_the_best_of_100_noise_strategies_is_not_significant_after_deflation(seed):
    noise = noise_matrix(TICKS, CONFIGS, seed)
    best, sharpes = best_of(noise)
    assert probabilistic_sharpe(best) > 0.9  # taken alone it looks like skill...
    dsr, sr0 = deflated_sharpe(best, CONFIGS, float(np.var(sharpes, ddof=1)))
    assert dsr < 0.95  # ...deflated for the 100 tries, it is not
    assert sr0 == pytest.approx(sharpe(best), abs=0.04)  # about what luck alone gives


@pytest.mark.parametrize("seed", range(5))
def test_a_planted_edge_among_100_noise_strategies_is_significant(seed):
    matrix = noise_matrix(TICKS, CONFIGS, seed)
    matrix[:, 17] += 0.002  # a true Sharpe of 0.2 per tick
    best, sharpes = best_of(matrix)
    assert best is not None
    assert sharpe(best) == max(sharpes)
    assert np.array_equal(best, matrix[:, 17])
    dsr, _ = deflated_sharpe(best, CONFIGS, float(np.var(sharpes, ddof=1)))
    assert dsr > 0.99


def test_one_configuration_is_deflated_against_zero():
    r = noise_matrix(TICKS, 1, 9)[:, 0] + 0.0005
    dsr, sr0 = deflated_sharpe(r, 1)
    assert sr0 == 0.0
    assert dsr == pytest.approx(probabilistic_sharpe(r))


def test_pbo_of_pure_noise_is_about_one_half_and_of_a_planted_edge_near_zero():
    noise_pbos = [pbo_cscv(noise_matrix(400, 30, s), blocks=10)[0] for s in range(6)]
    assert 0.3 < float(np.mean(noise_pbos)) < 0.7
    planted = noise_matrix(400, 30, 0)
    planted[:, 5] += 0.004
    pbo, logits = pbo_cscv(planted, blocks=10)
    assert pbo < 0.05
    assert len(logits) == math.comb(10, 5)


def test_pbo_near_one_when_in_sample_winners_lose_out_of_sample():
    """Each config earns in one half of the blocks and loses in the other: whatever wins
    on a training half is the config that loses on the test half."""
    blocks, per, n = 8, 20, 12
    rng = np.random.default_rng(5)
    matrix = rng.standard_normal((blocks * per, n)) * 0.001
    signs = rng.choice([-1.0, 1.0], size=(blocks, n))
    signs -= signs.mean(axis=0)  # each config nets to zero over all blocks
    matrix += np.repeat(signs, per, axis=0) * 0.01
    assert pbo_cscv(matrix, blocks=blocks)[0] > 0.7


def test_pbo_refuses_what_it_cannot_compute():
    with pytest.raises(ValueError, match="two configurations"):
        pbo_cscv(np.zeros((100, 1)))
    with pytest.raises(ValueError, match="even"):
        pbo_cscv(np.zeros((100, 3)), blocks=5)
    with pytest.raises(ValueError, match="too few"):
        pbo_cscv(np.zeros((20, 3)), blocks=16)
