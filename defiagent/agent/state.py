"""The agent's short memory that limits read: intents per strategy, spend per window."""

from __future__ import annotations

from collections import deque


class RateWindow:
    """Sliding-window counter of intents, per strategy."""

    def __init__(self, window_seconds: float) -> None:
        self.window = window_seconds
        self._events: dict[str, deque[float]] = {}

    def record(self, key: str, now: float) -> int:
        """Count one more intent for `key` at `now`; return the count in the window."""
        events = self._events.setdefault(key, deque())
        events.append(now)
        while events and now - events[0] >= self.window:
            events.popleft()
        return len(events)


class SpendLedger:
    """Numeraire value spent by sent transactions, in a sliding window."""

    def __init__(self, window_seconds: float) -> None:
        self.window = window_seconds
        self._spends: deque[tuple[float, float]] = deque()

    def add(self, now: float, value: float) -> None:
        if value > 0:
            self._spends.append((now, value))

    def spent(self, now: float) -> float:
        while self._spends and now - self._spends[0][0] >= self.window:
            self._spends.popleft()
        return sum(v for _, v in self._spends)
