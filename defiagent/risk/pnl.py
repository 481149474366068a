"""The agent's record of its portfolio value over time, from which loss limits are read."""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from pathlib import Path

from defiagent.agent.state import append_point, load_points
from defiagent.guard.base import RiskState
from defiagent.market.models import MarketSnapshot, PortfolioSnapshot


class PortfolioHistory:
    """Values in the numeraire, one per tick; old points drop out after `keep_seconds`.

    With a path, the points (and so the loss window and the peak) survive a restart:
    restarting the agent must not reset a loss limit.
    """

    def __init__(
        self,
        *,
        loss_window_seconds: float = 86_400,
        keep_seconds: float | None = None,
        path: Path | None = None,
    ):
        self.loss_window = loss_window_seconds
        self.keep = keep_seconds or loss_window_seconds
        self.path = path
        self.points: deque[tuple[float, float]] = deque(load_points(path))
        self.peak: float | None = max((v for _, v in self.points), default=None)
        self.first: float | None = self.points[0][1] if self.points else None  # PnL's base
        # The loss window's high, read on every observation (each tick and after each
        # trade): a monotonic deque of (time, value), values strictly decreasing, so the
        # high is its head, whatever the window holds. Valid while times only move forward;
        # a clock that steps back turns it off and the window is scanned as before.
        self._highs: deque[tuple[float, float]] = deque()
        self._ordered = True
        self._last_query = self._last_recorded = -math.inf
        for t, v in self.points:
            self._track(t, v)

    def _track(self, t: float, value: float) -> None:
        if not self._ordered:
            return
        if t < self._last_recorded or t < self._last_query or math.isnan(value):
            self._ordered = False
            self._highs.clear()
            return
        self._last_recorded = t
        while self._highs and self._highs[-1][1] <= value:
            self._highs.pop()
        self._highs.append((t, value))

    def record(self, t: float, value: float) -> None:
        self._track(t, value)
        self.points.append((t, value))
        append_point(self.path, t, value)
        if self.first is None:
            self.first = value
        self.peak = value if self.peak is None else max(self.peak, value)
        while self.points and t - self.points[0][0] > self.keep:
            self.points.popleft()
        while self._highs and t - self._highs[0][0] > self.keep:
            self._highs.popleft()

    def window_high(self, t: float) -> float | None:
        """The highest value recorded with `t - ts <= loss_window` (None: none)."""
        if self._ordered and t >= self._last_query:
            self._last_query = t
            while self._highs and t - self._highs[0][0] > self.loss_window:
                self._highs.popleft()
            return self._highs[0][1] if self._highs else None
        self._ordered = False
        self._highs.clear()
        return max((v for ts, v in self.points if t - ts <= self.loss_window), default=None)

    def observe(
        self,
        t: float,
        market: MarketSnapshot,
        portfolio: PortfolioSnapshot,
        prices: dict[str, float],
    ) -> tuple[float | None, RiskState]:
        """Value the portfolio at `prices`, read the risk state, then record the value."""
        value, positions = portfolio_value(market, portfolio, prices)
        risk = self.state(t, value, positions)
        if value is not None:
            self.record(t, value)
        else:
            risk = dataclasses.replace(
                risk, unvalued_reason=why_unpriced(market, portfolio, prices)
            )
        return value, risk

    def state(
        self, t: float, value: float | None, positions: dict[str, float] | None = None
    ) -> RiskState:
        if value is None:
            return RiskState(value_now=None, position_values=positions or {})
        recent = self.window_high(t)
        high = value if recent is None else max(recent, value)
        loss = (high - value) / high * 100 if high > 0 else 0.0
        peak = max(self.peak or value, value)
        drawdown = (peak - value) / peak * 100 if peak > 0 else 0.0
        return RiskState(
            value_now=value,
            loss_pct_in_window=loss,
            drawdown_pct=drawdown,
            position_values=positions or {},
        )


def why_unpriced(
    market: MarketSnapshot, portfolio: PortfolioSnapshot, prices: dict[str, float]
) -> str:
    """The first holding without a price, and what its pools' price checks said."""
    held = [t for t, b in portfolio.balances.items() if b and t not in prices]
    if portfolio.eth_balance and "ETH" not in prices:
        held.append("ETH")
    if not held:
        return ""
    token = held[0]
    info = market.token(token)
    label = info.symbol if info else token
    if market.numeraire is None:
        return "no numeraire is configured"
    failing = [
        c.reason
        for c in market.price_checks
        if not c.ok and token in (c.base, c.quote) and c.reason
    ]
    if failing:
        return f"{label} has no sane price: {failing[0]}"
    return f"{label} has no sane route to the numeraire"


def portfolio_value(
    market: MarketSnapshot, portfolio: PortfolioSnapshot, prices: dict[str, float]
) -> tuple[float | None, dict[str, float]]:
    """(total in the numeraire or None if any holding has no price, value per asset)."""
    positions: dict[str, float] = {}
    pools = {pool.address: pool for pool in market.pools}
    for token, balance in portfolio.balances.items():
        if balance == 0:
            continue
        if token in prices:
            positions[token] = balance * prices[token]
            continue
        pool = pools.get(token)
        if pool and pool.total_supply and pool.token0 in prices and pool.token1 in prices:
            share = balance / pool.total_supply
            positions[token] = share * (
                pool.reserve0 * prices[pool.token0] + pool.reserve1 * prices[pool.token1]
            )
            continue
        return None, positions
    if portfolio.eth_balance:
        if "ETH" not in prices:
            return None, positions
        positions["ETH"] = portfolio.eth_balance * prices["ETH"]
    return sum(positions.values()), positions
