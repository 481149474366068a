"""The agent's short memory that limits read: intents per strategy, spend per window.

The spend ledger can be kept in a file in the state dir, so restarting the agent does not
reset the window a value cap counts over.
"""

from __future__ import annotations

import json
import os
from collections import deque
from pathlib import Path


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


def load_points(path: Path | None) -> list[tuple[float, float]]:
    """(time, value) pairs from a JSON-lines file; unreadable lines are skipped."""
    if path is None or not path.is_file():
        return []
    points = []
    for line in path.read_text().splitlines():
        try:
            t, v = json.loads(line)
            points.append((float(t), float(v)))
        except (ValueError, TypeError):
            continue
    return points


def append_line(path: Path, line: str) -> None:
    """Append one line and fsync it (the state files must survive a crash)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def append_point(path: Path | None, t: float, value: float) -> None:
    if path is not None:
        append_line(path, json.dumps([t, value]))


class SpendLedger:
    """Numeraire value spent by sent transactions, in a sliding window (persisted if a path
    is given: a restart must not reset a value cap)."""

    def __init__(self, window_seconds: float, path: Path | None = None) -> None:
        self.window = window_seconds
        self.path = path
        self._spends: deque[tuple[float, float]] = deque(load_points(path))

    def add(self, now: float, value: float) -> None:
        if value > 0:
            self._spends.append((now, value))
            append_point(self.path, now, value)

    def spent(self, now: float) -> float:
        while self._spends and now - self._spends[0][0] >= self.window:
            self._spends.popleft()
        return sum(v for _, v in self._spends)
