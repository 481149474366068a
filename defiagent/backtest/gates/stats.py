"""The statistics behind the overfitting gates, on plain return series (per tick).

Sharpe ratios here are per tick and not annualised (mean / sample standard deviation), as
in `BacktestMetrics`; every formula below is written for that.

- Probabilistic Sharpe ratio (Bailey and López de Prado, "The Sharpe Ratio Efficient
  Frontier", 2012): the probability that the true Sharpe ratio exceeds a benchmark, given
  the sample's length, skewness and kurtosis.
- Deflated Sharpe ratio (Bailey and López de Prado, "The Deflated Sharpe Ratio", 2014): the
  PSR against the Sharpe ratio the best of N trials would reach by luck alone, from N and
  the variance of the trials' Sharpe ratios.
- Probability of backtest overfitting by combinatorially symmetric cross-validation
  (Bailey, Borwein, López de Prado and Zhu, "The Probability of Backtest Overfitting",
  2017): how often the configuration that is best in-sample ranks in the bottom half
  out-of-sample, over every split of the ticks into two halves of blocks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import combinations
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

# numpy and scipy are imported where they are used: agent.toml's [backtest.gates] table is
# read by every command, and scipy.stats alone takes a second to import.

EULER_GAMMA = 0.5772156649015329


def sharpe(returns: Sequence[float] | np.ndarray[Any, Any]) -> float:
    """mean / sample standard deviation, per tick; 0 for a flat or too short series."""
    import numpy as np

    r = np.asarray(returns, dtype=float)
    if r.size < 2:
        return 0.0
    sd = float(r.std(ddof=1))
    if not math.isfinite(sd) or sd <= 1e-15 * max(1.0, float(np.abs(r).max())):
        return 0.0
    return float(r.mean()) / sd


def moments(returns: Sequence[float] | np.ndarray[Any, Any]) -> tuple[float, float]:
    """(skewness, kurtosis) with kurtosis 3 for a normal series; (0, 3) when undefined."""
    import numpy as np
    from scipy import stats as sps

    r = np.asarray(returns, dtype=float)
    if r.size < 3 or float(r.std()) == 0.0:
        return 0.0, 3.0
    return float(sps.skew(r, bias=False)), float(sps.kurtosis(r, fisher=False, bias=False))


def probabilistic_sharpe(
    returns: Sequence[float] | np.ndarray[Any, Any], benchmark: float = 0.0
) -> float:
    """P(true Sharpe > benchmark): Φ((SR - SR*) √(T-1) / √(1 - skew SR + (kurt - 1)/4 SR²))."""
    import numpy as np
    from scipy import stats as sps

    r = np.asarray(returns, dtype=float)
    t = r.size
    if t < 2:
        return 0.0
    sr = sharpe(r)
    skew, kurt = moments(r)
    var = 1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr * sr
    if var <= 0:  # moments this extreme make the formula meaningless: no evidence
        return 0.0
    return float(sps.norm.cdf((sr - benchmark) * math.sqrt(t - 1) / math.sqrt(var)))


def expected_max_sharpe(n_trials: int, trial_sharpe_variance: float) -> float:
    """The Sharpe ratio the best of `n_trials` independent zero-edge trials reaches on
    average: √V ((1 - g) Φ⁻¹(1 - 1/N) + g Φ⁻¹(1 - 1/(N e))) with g the Euler-Mascheroni constant, 0 for a single trial."""
    from scipy import stats as sps

    if n_trials <= 1 or trial_sharpe_variance <= 0:
        return 0.0
    n = float(n_trials)
    z1 = sps.norm.ppf(1.0 - 1.0 / n)
    z2 = sps.norm.ppf(1.0 - 1.0 / (n * math.e))
    return math.sqrt(trial_sharpe_variance) * ((1 - EULER_GAMMA) * z1 + EULER_GAMMA * z2)


def deflated_sharpe(
    returns: Sequence[float] | np.ndarray[Any, Any],
    n_trials: int,
    trial_sharpe_variance: float | None = None,
) -> tuple[float, float]:
    """(DSR, the benchmark SR0 it was measured against).

    Without the trials' variance (a single configuration), the variance of a Sharpe
    estimate under the null, 1/(T-1), stands in: the spread N lucky trials would show."""
    import numpy as np

    r = np.asarray(returns, dtype=float)
    if trial_sharpe_variance is None:
        trial_sharpe_variance = 1.0 / max(r.size - 1, 1)
    sr0 = expected_max_sharpe(n_trials, trial_sharpe_variance)
    return probabilistic_sharpe(r, sr0), sr0


def pbo_cscv(matrix: np.ndarray[Any, Any], blocks: int = 16) -> tuple[float, np.ndarray[Any, Any]]:
    """(probability of backtest overfitting, the logits λ of every split).

    `matrix` holds one column of per-tick returns per configuration tried (T by N, same
    ticks). Rows are cut into `blocks` contiguous blocks; each choice of half of them is
    the training set and the rest the test set. λ = logit of the relative rank, out of
    sample, of the configuration with the best in-sample Sharpe ratio; PBO = P(λ ≤ 0)."""
    import numpy as np

    m = np.asarray(matrix, dtype=float)
    t, n = m.shape
    if n < 2:
        raise ValueError("PBO needs at least two configurations")
    if blocks < 2 or blocks % 2:
        raise ValueError("the number of blocks must be even and at least 2")
    if t < 2 * blocks:
        raise ValueError(f"{t} ticks are too few for {blocks} blocks of at least 2 ticks")
    edges = np.linspace(0, t, blocks + 1).astype(int)
    # Per block: count, sum and sum of squares of each column, so a split's Sharpe ratios
    # come from adding S/2 rows instead of re-reading T/2 ticks.
    count = np.diff(edges).astype(float)
    total = np.add.reduceat(m, edges[:-1], axis=0)
    square = np.add.reduceat(m * m, edges[:-1], axis=0)

    def sharpe_of(chosen: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        k = count[chosen].sum()
        s, q = total[chosen].sum(axis=0), square[chosen].sum(axis=0)
        mean = s / k
        var = np.maximum((q - k * mean * mean) / (k - 1), 0.0)
        sd = np.sqrt(var)
        out = np.zeros_like(mean)
        ok = sd > 1e-15
        out[ok] = mean[ok] / sd[ok]
        return out

    logits = []
    everything = np.arange(blocks)
    for train in combinations(range(blocks), blocks // 2):
        train_idx = np.array(train)
        test_idx = np.setdiff1d(everything, train_idx)
        best = int(np.argmax(sharpe_of(train_idx)))
        oos = sharpe_of(test_idx)
        # Relative rank of the in-sample winner out of sample, in (0, 1): ties count half.
        below = float((oos < oos[best]).sum()) + 0.5 * float((oos == oos[best]).sum() - 1)
        omega = (below + 1.0) / (n + 1.0)
        logits.append(math.log(omega / (1.0 - omega)))
    lam = np.asarray(logits)
    return float((lam <= 0).mean()), lam
