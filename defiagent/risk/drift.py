"""Drift detection: live trades compared with the envelope the strategy's mandate declares.

`judge(trades, mandate, now=...)` is the pure check over a list of trades (the report uses
it on the audit log); `DriftMonitor` keeps the recent trades of a running agent and calls
it. A finding per breached bound and strategy, each with its figures. A metric is judged
only when there is enough data for it:

- largest trade (value, % of the portfolio): at least one trade with that figure;
- trades/day above a maximum, turnover/day: whenever the window already holds too much
  (a count can only grow as the window fills);
- trades/day below a minimum: only once a whole window has been observed;
- mean slippage: at least `min_slippage_trades` trades with a measured slippage;
- win rate: at least `min_closed_trades` closing trades (with a realized PnL).

Whether a finding also trips the kill switch is `[auto_kill] on_drift` (monitoring/auto_kill.py).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from defiagent.monitoring.events import TradeEvent
from defiagent.monitoring.interfaces import Alert, AlertKind, AlertSeverity
from defiagent.strategy.mandate import Mandate

Metric = Literal[
    "trade_value",
    "trade_pct",
    "trades_per_day",
    "turnover_per_day",
    "slippage_bps",
    "win_rate",
]

LABELS: dict[str, str] = {
    "trade_value": "largest trade",
    "trade_pct": "largest trade (% of portfolio)",
    "trades_per_day": "trades/day",
    "turnover_per_day": "turnover/day",
    "slippage_bps": "mean slippage (bps)",
    "win_rate": "win rate",
}


class DriftFinding(BaseModel):
    model_config = ConfigDict(frozen=True)

    metric: Metric
    bound_name: str  # the mandate field, e.g. "max_trades_per_day"
    direction: Literal["above", "below"]
    live: float
    bound: float
    strategy: str
    samples: int  # trades the live figure was measured on
    window_hours: float
    at: float  # when it was judged (unix seconds)
    message: str

    @property
    def label(self) -> str:
        return LABELS[self.metric]

    def to_alert(self, agent: str = "", *, severity: AlertSeverity | None = None) -> Alert:
        """An alert whose title does not carry the figures, so repeats throttle together."""
        return Alert(
            kind=AlertKind.DRIFT,
            severity=severity or AlertSeverity.WARNING,
            title=f"drift: {self.label} {self.direction} the mandate ({self.strategy})",
            detail=self.message,
            agent=agent,
            strategy=self.strategy,
            data={
                "metric": self.metric,
                "bound_name": self.bound_name,
                "live": self.live,
                "bound": self.bound,
                "samples": self.samples,
                "window_hours": self.window_hours,
            },
        )


def _fmt(metric: str, value: float) -> str:
    if metric == "win_rate":
        return f"{value * 100:.0f}%"
    if metric == "trade_pct":
        return f"{value:.1f}%"
    if metric == "turnover_per_day":
        return f"{value * 100:.0f}%"
    if metric == "trades_per_day":
        return f"{value:.1f}".removesuffix(".0")
    if metric == "slippage_bps":
        return f"{value:.1f} bps"
    return f"{value:,.2f}"


def _finding(
    metric: Metric,
    bound_name: str,
    live: float,
    bound: float,
    *,
    strategy: str,
    samples: int,
    mandate: Mandate,
    now: float,
    detail: str = "",
) -> DriftFinding:
    direction: Literal["above", "below"] = "below" if bound_name.startswith("min_") else "above"
    extra = f" ({detail})" if detail else ""
    message = (
        f"{LABELS[metric]} {_fmt(metric, live)} {direction} the mandate's "
        f"{_fmt(metric, bound)}{extra}, strategy {strategy}, "
        f"last {mandate.window_hours:g} h"
    )
    return DriftFinding(
        metric=metric,
        bound_name=bound_name,
        direction=direction,
        live=live,
        bound=bound,
        strategy=strategy,
        samples=samples,
        window_hours=mandate.window_hours,
        at=now,
        message=message,
    )


def _judge_one(
    strategy: str,
    trades: list[TradeEvent],
    mandate: Mandate,
    now: float,
    observed_since: float | None,
) -> list[DriftFinding]:
    m = mandate
    out: list[DriftFinding] = []
    kw: dict[str, Any] = {"strategy": strategy, "mandate": m, "now": now}

    valued = [t for t in trades if t.value_in is not None]
    if m.max_trade_value is not None and valued:
        biggest = max(valued, key=lambda t: t.value_in or 0.0)
        if (biggest.value_in or 0.0) > m.max_trade_value:
            out.append(
                _finding(
                    "trade_value",
                    "max_trade_value",
                    biggest.value_in or 0.0,
                    m.max_trade_value,
                    samples=len(valued),
                    detail=f"intent {biggest.intent_id}",
                    **kw,
                )
            )
    pcts = [
        (100.0 * t.value_in / t.portfolio_value, t)
        for t in valued
        if t.portfolio_value and t.value_in is not None
    ]
    if m.max_trade_pct is not None and pcts:
        pct, trade = max(pcts, key=lambda p: p[0])
        if pct > m.max_trade_pct:
            out.append(
                _finding(
                    "trade_pct",
                    "max_trade_pct",
                    pct,
                    m.max_trade_pct,
                    samples=len(pcts),
                    detail=f"intent {trade.intent_id}",
                    **kw,
                )
            )

    rate = len(trades) * m.per_day
    if m.max_trades_per_day is not None and rate > m.max_trades_per_day:
        out.append(
            _finding(
                "trades_per_day",
                "max_trades_per_day",
                rate,
                m.max_trades_per_day,
                samples=len(trades),
                **kw,
            )
        )
    whole_window = observed_since is not None and now - observed_since >= m.window_seconds
    if m.min_trades_per_day is not None and whole_window and rate < m.min_trades_per_day:
        out.append(
            _finding(
                "trades_per_day",
                "min_trades_per_day",
                rate,
                m.min_trades_per_day,
                samples=len(trades),
                **kw,
            )
        )

    if m.max_turnover_per_day is not None and valued:
        values = [t.portfolio_value for t in trades if t.portfolio_value]
        if values:
            portfolio = sum(values) / len(values)
            turnover = sum(t.value_in or 0.0 for t in valued) / portfolio * m.per_day
            if turnover > m.max_turnover_per_day:
                out.append(
                    _finding(
                        "turnover_per_day",
                        "max_turnover_per_day",
                        turnover,
                        m.max_turnover_per_day,
                        samples=len(valued),
                        **kw,
                    )
                )

    slips = [t.slippage_bps for t in trades if t.slippage_bps is not None]
    if m.max_slippage_bps is not None and len(slips) >= m.min_slippage_trades:
        mean = sum(slips) / len(slips)
        if mean > m.max_slippage_bps:
            out.append(
                _finding(
                    "slippage_bps",
                    "max_slippage_bps",
                    mean,
                    m.max_slippage_bps,
                    samples=len(slips),
                    **kw,
                )
            )

    closed = [t.realized_pnl for t in trades if t.realized_pnl is not None]
    if m.min_win_rate is not None and len(closed) >= m.min_closed_trades:
        wins = sum(1 for p in closed if p > 0)
        win_rate = wins / len(closed)
        if win_rate < m.min_win_rate:
            out.append(
                _finding(
                    "win_rate",
                    "min_win_rate",
                    win_rate,
                    m.min_win_rate,
                    samples=len(closed),
                    detail=f"{wins} of {len(closed)} closing trades won",
                    **kw,
                )
            )
    return out


def judge(
    trades: Iterable[TradeEvent],
    mandate: Mandate,
    *,
    now: float,
    observed_since: float | None = None,
    strategies: Iterable[str] = (),
) -> list[DriftFinding]:
    """The findings at `now`, per strategy, over the trades of the last window.

    `observed_since`: when watching began (the agent's start); without it a minimum trade
    rate is never judged. `strategies`: strategies to judge even if they have no trade in
    the window (so a strategy that went silent is caught by `min_trades_per_day`).
    """
    start = now - mandate.window_seconds
    by_strategy: dict[str, list[TradeEvent]] = {s: [] for s in strategies}
    for t in trades:
        if start < t.at <= now:
            by_strategy.setdefault(t.strategy, []).append(t)
    out: list[DriftFinding] = []
    for strategy in sorted(by_strategy):
        out += _judge_one(strategy, by_strategy[strategy], mandate, now, observed_since)
    return out


def scan(
    trades: Sequence[TradeEvent],
    mandate: Mandate,
    *,
    start: float,
    end: float,
) -> list[DriftFinding]:
    """Judge a recorded period as a monitor would have: after every trade and at `end`.

    Returns, per strategy and bound, the finding with the worst live figure (its `at` says
    when), so a report shows each breach once.
    """
    trades = sorted(trades, key=lambda t: t.at)
    strategies = sorted({t.strategy for t in trades})
    worst: dict[tuple[str, str], DriftFinding] = {}
    moments = [t.at for t in trades if start <= t.at <= end] + [end]
    for now in moments:
        for f in judge(trades, mandate, now=now, observed_since=start, strategies=strategies):
            key = (f.strategy, f.bound_name)
            old = worst.get(key)
            gap = f.live - f.bound if f.direction == "above" else f.bound - f.live
            if old is None or gap > (
                old.live - old.bound if old.direction == "above" else old.bound - old.live
            ):
                worst[key] = f
    return sorted(worst.values(), key=lambda f: (f.at, f.strategy, f.bound_name))


class DriftMonitor:
    """The running agent's drift check: `observe` each trade, `check` once per tick."""

    def __init__(
        self,
        mandate: Mandate,
        clock: Callable[[], float] = time.time,
        *,
        strategies: Iterable[str] = (),
    ) -> None:
        self.mandate = mandate
        self.clock = clock
        self.started = clock()
        self.strategies = set(strategies)
        self._trades: deque[TradeEvent] = deque()

    def observe(self, trade: TradeEvent) -> None:
        self._trades.append(trade)
        self.strategies.add(trade.strategy)

    def check(self, now: float | None = None) -> list[DriftFinding]:
        now = self.clock() if now is None else now
        cutoff = now - self.mandate.window_seconds
        while self._trades and self._trades[0].at <= cutoff:
            self._trades.popleft()
        return judge(
            self._trades,
            self.mandate,
            now=now,
            observed_since=self.started,
            strategies=self.strategies,
        )
