"""The agent's record of its portfolio value over time, from which loss limits are read."""

from __future__ import annotations

from collections import deque
from pathlib import Path

from defiagent.agent.state import append_point, load_points
from defiagent.guard.base import RiskState


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

    def record(self, t: float, value: float) -> None:
        self.points.append((t, value))
        append_point(self.path, t, value)
        self.peak = value if self.peak is None else max(self.peak, value)
        while self.points and t - self.points[0][0] > self.keep:
            self.points.popleft()

    def state(
        self, t: float, value: float | None, positions: dict[str, float] | None = None
    ) -> RiskState:
        if value is None:
            return RiskState(value_now=None, position_values=positions or {})
        recent = [v for ts, v in self.points if t - ts <= self.loss_window] + [value]
        high = max(recent)
        loss = (high - value) / high * 100 if high > 0 else 0.0
        peak = max(self.peak or value, value)
        drawdown = (peak - value) / peak * 100 if peak > 0 else 0.0
        return RiskState(
            value_now=value,
            loss_pct_in_window=loss,
            drawdown_pct=drawdown,
            position_values=positions or {},
        )
