"""A strategy's mandate: the envelope its live behaviour is expected to stay inside.

Every bound is optional; an absent bound is not judged. Bounds are read over a rolling
window of `window_hours` (default 24) and rates are scaled to a day, so "trades per day"
with a 6-hour window is four times the count of those 6 hours. Drift detection
(`defiagent.risk.drift`) compares live trades with these bounds; `defiagent report`
compares the audit log's trades with them.

A mandate is declared by hand (`Mandate.load("mandate.toml")`, or the `mandate` table of
the strategy's config) or measured from a backtest's trades with a safety margin
(`Mandate.from_backtest(trades, margin=0.5)`).
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from defiagent.errors import ConfigError
from defiagent.monitoring.events import TradeEvent

DEFAULT_MARGIN = 0.5  # 50% headroom over what the backtest did


class Mandate(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_trade_value: float | None = Field(
        default=None, gt=0, description="largest single trade, in the numeraire (value_in)"
    )
    max_trade_pct: float | None = Field(
        default=None,
        gt=0,
        le=100,
        description="largest single trade, in percent of the portfolio value before it",
    )
    max_trades_per_day: float | None = Field(default=None, ge=0)
    min_trades_per_day: float | None = Field(
        default=None, ge=0, description="judged only after a whole window was observed"
    )
    max_turnover_per_day: float | None = Field(
        default=None, gt=0, description="traded value / portfolio value per day (1.0 = 100%)"
    )
    max_slippage_bps: float | None = Field(
        default=None, description="mean slippage of the window's trades, in basis points"
    )
    min_slippage_trades: int = Field(
        default=3, ge=1, description="trades with a measured slippage before the mean is judged"
    )
    min_win_rate: float | None = Field(
        default=None, ge=0, le=1, description="share of closing trades with a positive PnL"
    )
    min_closed_trades: int = Field(
        default=10, ge=1, description="closing trades in the window before the win rate is judged"
    )
    window_hours: float = Field(default=24.0, gt=0, le=24 * 90)

    @model_validator(mode="after")
    def _consistent(self) -> Mandate:
        lo, hi = self.min_trades_per_day, self.max_trades_per_day
        if lo is not None and hi is not None and lo > hi:
            raise ValueError("min_trades_per_day is above max_trades_per_day")
        return self

    @property
    def window_seconds(self) -> float:
        return self.window_hours * 3600

    @property
    def per_day(self) -> float:
        """Factor from a count over the window to a count per day."""
        return 24.0 / self.window_hours

    def bounds(self) -> dict[str, float]:
        """The bounds that are set, by field name."""
        names = (
            "max_trade_value",
            "max_trade_pct",
            "max_trades_per_day",
            "min_trades_per_day",
            "max_turnover_per_day",
            "max_slippage_bps",
            "min_win_rate",
        )
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}

    def describe(self) -> str:
        bounds = self.bounds()
        if not bounds:
            return "no bounds declared"
        parts = [f"{name} {value:g}" for name, value in bounds.items()]
        return f"{', '.join(parts)} (window {self.window_hours:g} h)"

    # --- sources ----------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "the mandate") -> Mandate:
        if not isinstance(data, dict):
            raise ConfigError(f"{source} is not a table of bounds")
        if set(data) == {"mandate"} and isinstance(data["mandate"], dict):
            data = data["mandate"]  # a file with a single [mandate] table
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            raise ConfigError(f"{source}: {where}: {err['msg']}") from exc

    @classmethod
    def load(cls, path: Path | str) -> Mandate:
        """From a TOML file (top-level keys or a `[mandate]` table) or a JSON object."""
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(f"the mandate file {path} cannot be read: {exc.strerror}") from exc
        try:
            data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
        except (ValueError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"the mandate file {path} is not valid: {exc}") from exc
        return cls.from_dict(data, source=f"the mandate file {path}")

    @classmethod
    def from_backtest(
        cls,
        trades: Sequence[TradeEvent],
        *,
        margin: float = DEFAULT_MARGIN,
        window_hours: float = 24.0,
        min_closed_trades: int = 10,
    ) -> Mandate:
        """The envelope a backtest's trades stayed in, widened by `margin`.

        Upper bounds are the backtest's worst figure times (1 + margin); lower bounds are
        its lowest figure divided by (1 + margin). Rates are measured per window of
        `window_hours` (from the first trade); the lowest rate only over whole windows.
        A metric the backtest has no data for stays unbounded.
        """
        if margin < 0:
            raise ConfigError("the margin of a backtest mandate cannot be negative")
        up, down = 1.0 + margin, 1.0 / (1.0 + margin)
        bounds: dict[str, Any] = {"window_hours": window_hours}
        if not trades:
            return cls(**bounds)
        trades = sorted(trades, key=lambda t: t.at)
        values = [t.value_in for t in trades if t.value_in is not None]
        if values and max(values) > 0:
            bounds["max_trade_value"] = max(values) * up
        pcts = [
            100.0 * t.value_in / t.portfolio_value
            for t in trades
            if t.value_in is not None and t.portfolio_value
        ]
        if pcts and max(pcts) > 0:
            bounds["max_trade_pct"] = min(100.0, max(pcts) * up)

        window = window_hours * 3600
        first, last = trades[0].at, trades[-1].at
        n_windows = int((last - first) // window) + 1
        counts = [0] * n_windows
        traded = [0.0] * n_windows
        pvs: list[list[float]] = [[] for _ in range(n_windows)]
        for t in trades:
            i = int((t.at - first) // window)
            counts[i] += 1
            if t.value_in is not None:
                traded[i] += t.value_in
            if t.portfolio_value:
                pvs[i].append(t.portfolio_value)
        per_day = 24.0 / window_hours
        bounds["max_trades_per_day"] = max(counts) * per_day * up
        whole = n_windows - 1  # windows that ended before the last trade
        if whole >= 1:
            lowest = min(counts[:whole]) * per_day * down
            if lowest > 0:
                bounds["min_trades_per_day"] = lowest
        turnovers = [
            traded[i] / (sum(pvs[i]) / len(pvs[i])) * per_day
            for i in range(n_windows)
            if pvs[i] and traded[i] > 0
        ]
        if turnovers:
            bounds["max_turnover_per_day"] = max(turnovers) * up
        slips = [t.slippage_bps for t in trades if t.slippage_bps is not None]
        if slips:
            # The mean over the backtest, widened; +1 bps so a frictionless backtest still
            # leaves room for rounding.
            bounds["max_slippage_bps"] = max(sum(slips) / len(slips), 0.0) * up + 1.0
        closed = [t.realized_pnl for t in trades if t.realized_pnl is not None]
        if len(closed) >= min_closed_trades:
            rate = sum(1 for p in closed if p > 0) / len(closed)
            if rate > 0:
                bounds["min_win_rate"] = rate * down
                bounds["min_closed_trades"] = min_closed_trades
        return cls(**bounds)
