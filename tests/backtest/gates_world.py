"""Synthetic backtests with known answers, for the overfitting gates' tests.

A "world" is a function from (params, tick) to that tick's return, plus a price series a
strategy decides on; its evaluator answers like `run_backtest` on windows of ticks.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from defiagent.backtest.models import BacktestResult, TickDecision
from defiagent.market.history import MarketHistory, TickRow, write_history

ReturnFn = Callable[[Mapping[str, Any], np.ndarray], np.ndarray]  # (params, ticks) -> returns


def noise_matrix(ticks: int, configs: int, seed: int, scale: float = 0.01) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((ticks, configs)) * scale


def result(returns, params=None, *, warmup: int = 0, decisions=()) -> BacktestResult:
    return BacktestResult(
        strategy="synthetic",
        params=dict(params or {}),
        returns=[float(x) for x in returns],
        warmup=warmup,
        decisions=list(decisions),
    )


class World:
    """`evaluate(params, start, end, warmup)` over a fixed horizon of ticks."""

    def __init__(self, ticks: int, returns: ReturnFn, prices: np.ndarray | None = None):
        self.ticks = ticks
        self.returns = returns
        self.prices = prices
        self.calls: list[tuple[dict[str, Any], int, int, int]] = []

    def __call__(
        self, params: Mapping[str, Any], start: int, end: int, warmup: int
    ) -> BacktestResult:
        self.calls.append((dict(params), start, end, warmup))
        ticks = np.arange(start, end)
        decisions = self.decide(params, start, end, warmup) if self.prices is not None else []
        return result(self.returns(params, ticks), params, warmup=warmup, decisions=decisions)

    def decide(self, params, start, end, warmup) -> list[TickDecision]:
        """A moving-average strategy: buy below the average of the last `lookback` prices it
        has seen (all of them when `lookback` is 0: a result that depends on the start)."""
        assert self.prices is not None
        first = max(start - warmup, 0)
        lookback = int(params.get("lookback", 10))
        out = []
        for t in range(first, end):
            seen = self.prices[first : t + 1]
            window = seen if lookback == 0 else seen[-lookback:]
            gap = self.prices[t] - window.mean()  # sized by how far price is from average
            side = "buy" if gap < 0 else "sell"
            amount = round(abs(gap) * 1_000)
            intent = {"id": uuid.uuid4().hex, "kind": side, "amount": amount, "reason": f"{t}"}
            out.append(TickDecision(tick=t - first, block=1000 + t, intents=[intent]))
        return out


def column_world(matrix: np.ndarray, key: str = "k") -> World:
    """Config `{key: i}` earns column i of `matrix`, tick by tick."""

    def returns(params: Mapping[str, Any], ticks: np.ndarray) -> np.ndarray:
        return matrix[ticks, int(params[key])]

    return World(matrix.shape[0], returns)


def save(history: MarketHistory, out) -> MarketHistory:
    """Write an in-memory history as a history folder (the rows where a pool changed)."""
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
