"""Look for secret values where they must never be: files written, command lines, environments."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

MAX_SCANNED_BYTES = 64 * 1024 * 1024


def _ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def _is_descendant(pid: int, ancestor: int) -> bool:
    seen = 0
    while pid and pid != 1 and seen < 64:
        parent = _ppid(pid)
        if parent is None:
            return False
        if parent == ancestor:
            return True
        pid, seen = parent, seen + 1
    return False


class ProcessWatch:
    """Polls /proc while a run goes on: every process's argv, and the environment of every
    process this one started (children, sandboxes, anvil forks)."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.cmdlines: dict[int, bytes] = {}
        self.environs: dict[int, bytes] = {}
        self.children_seen: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.is_set():
            for entry in os.listdir("/proc"):
                if not entry.isdigit():
                    continue
                pid = int(entry)
                try:
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                self.cmdlines[pid] = self.cmdlines.get(pid, b"") + b"\n" + cmd
                if pid != me and _is_descendant(pid, me):
                    self.children_seen.add(pid)
                    with contextlib.suppress(OSError):
                        self.environs[pid] = Path(f"/proc/{pid}/environ").read_bytes()
            self._stop.wait(self.interval)

    def __enter__(self) -> ProcessWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def leaks(self, needles: list[str]) -> list[str]:
        found = []
        for pid, blob in list(self.cmdlines.items()) + list(self.environs.items()):
            for needle in needles:
                if needle.encode() in blob:
                    where = "argv" if blob is self.cmdlines.get(pid) else "environment"
                    found.append(f"pid {pid} {where}: {blob[:120]!r}")
        return found


def files_under(roots: list[Path], since: float) -> list[Path]:
    out = []
    for root in roots:
        # os.walk ignores folders that vanish under it (other test runs clean up /tmp)
        for folder, _, names in os.walk(root):
            for name in names:
                path = Path(folder) / name
                try:
                    if not path.is_symlink() and path.is_file() and path.stat().st_mtime >= since:
                        out.append(path)
                except OSError:
                    continue
    return out


def file_leaks(paths: list[Path], needles: list[str]) -> list[str]:
    found = []
    for path in paths:
        try:
            data = path.read_bytes()[:MAX_SCANNED_BYTES]
        except OSError:
            continue
        for needle in needles:
            if needle.encode() in data:
                found.append(f"{path}: holds a secret value")
    return found


def now() -> float:
    return time.time() - 1  # mtime granularity
