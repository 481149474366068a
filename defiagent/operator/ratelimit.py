"""Failed code attempts, persisted so that separate CLI invocations count together.

`state_dir/operator-failures.json` keeps the times of recent failures. At `max_failures`
failures inside `window_seconds`, attempts are refused without looking at the code until
the oldest of them leaves the window. An accepted code clears the list.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from defiagent.operator.files import read_private_json, write_private_json

FILENAME = "operator-failures.json"
WHAT = "operator failure record"
MAX_FAILURES = 5
WINDOW_SECONDS = 15 * 60


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


class FailureLimiter:
    """Call under `state_lock`: reads, decides and writes are not atomic on their own."""

    def __init__(
        self,
        state_dir: Path | str,
        *,
        max_failures: int = MAX_FAILURES,
        window_seconds: float = WINDOW_SECONDS,
    ) -> None:
        self.path = Path(state_dir) / FILENAME
        self.max_failures = max_failures
        self.window_seconds = window_seconds

    def recent(self, now: float) -> list[float]:
        data = read_private_json(self.path, WHAT) or {}
        times = data.get("failures", []) if isinstance(data, dict) else []
        return sorted(
            float(t)
            for t in times
            if isinstance(t, int | float) and now - self.window_seconds < t <= now
        )

    def locked_until(self, now: float) -> float | None:
        """When attempts are allowed again, or None when they are allowed now."""
        recent = self.recent(now)
        if len(recent) < self.max_failures:
            return None
        return recent[-self.max_failures] + self.window_seconds

    def record_failure(self, now: float) -> int:
        """Add one failure; returns the failures now inside the window."""
        recent = [*self.recent(now), now]
        write_private_json(self.path, {"failures": recent})
        return len(recent)

    def clear(self) -> None:
        if self.path.exists():
            write_private_json(self.path, {"failures": []})
