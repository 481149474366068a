"""The agent's short memory that limits read: intents per strategy, spend per window.

The spend ledger can be kept in a file in the state dir, so restarting the agent does not
reset the window a value cap counts over.
"""

from __future__ import annotations

import json
import math
import os
from collections import deque
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

from defiagent.errors import Refused
from defiagent.state_crypto.files import open_line, seal_line


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


def state_lines(path: Path, what: str) -> Iterator[tuple[int, str]]:
    """(line number, text) of each non-blank line of a JSON-lines state file."""
    for number, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
        try:
            line = raw.decode()
        except UnicodeDecodeError:
            raise damaged_line(path, number, what, "it is not UTF-8 text") from None
        if line.strip():
            # In an encrypted state dir each line is sealed on its own (state_crypto).
            yield number, open_line(path, number, line)


def damaged_line(path: Path, number: int, what: str, why: str) -> Refused:
    """The agent does not start on a state file it cannot read whole: skipping a line would
    forget a spend, a loss or a trade, and loosen the limits counted from it."""
    return Refused(
        f"line {number} of {path} is not a {what} record ({why}), and the agent does not "
        "start without all of them",
        remedy="fix or delete that line by hand, then start again; a crash can leave a torn "
        "last line",
    )


def load_points(path: Path | None) -> list[tuple[float, float]]:
    """(time, value) pairs from a JSON-lines file; a line that is not one is Refused."""
    if path is None or not path.is_file():
        return []
    points = []
    for number, line in state_lines(path, path.stem):
        try:
            t, v = json.loads(line)
            point = (float(t), float(v))
        except (ValueError, TypeError):
            raise damaged_line(path, number, path.stem, "not a [time, value] pair") from None
        if not all(map(math.isfinite, point)):
            raise damaged_line(path, number, path.stem, "not finite numbers")
        points.append(point)
    return points


def append_line(path: Path, line: str) -> None:
    """Append one line and fsync it (the state files must survive a crash)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = seal_line(path, line)
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
        # The window's total, kept exactly (a Fraction: adding and removing floats never
        # drifts), so a check costs the same however many spends the window holds.
        self._total, self._infinite = Fraction(0), 0
        for _, v in self._spends:
            self._count(v, +1)

    def _count(self, value: float, sign: int) -> None:
        if math.isfinite(value):
            self._total += sign * Fraction(value)
        else:  # an infinite spend fills any cap while it is in the window
            self._infinite += sign

    def add(self, now: float, value: float) -> None:
        if value > 0:
            self._spends.append((now, value))
            self._count(value, +1)
            append_point(self.path, now, value)

    def spent(self, now: float) -> float:
        while self._spends and now - self._spends[0][0] >= self.window:
            self._count(self._spends.popleft()[1], -1)
        if self._infinite:
            return math.inf
        return float(self._total) if self._spends else 0.0
