"""Background processes that outlive the command that started them, recorded by identity.

A pid alone is not an identity: after a reboot or a long time the number belongs to another
process, and `devnet down` must never signal that one. So a record keeps the pid with the
process's start time (in clock ticks since boot, /proc/PID/stat field 22); a process counts
as ours only while both match. Each one leads its own session, so its whole group is
signalled (anvil's children, if any, go with it).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict


class ProcessRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    pid: int
    start_ticks: int  # /proc/PID/stat starttime: with the pid, the process's identity
    marker: str  # a word its command line holds ("anvil", the traders' module)
    log: str


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in ticks) of a live pid, or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces or ')': split after
    # the last ')'. Then field 3 (state) is index 0 and field 22 (starttime) index 19.
    fields = text.rsplit(")", 1)[-1].split()
    try:
        return fields[0], int(fields[19])
    except (IndexError, ValueError):
        return None


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def record(pid: int, log: Path, marker: str) -> ProcessRecord:
    found = _stat(pid)
    if found is None:
        raise ProcessLookupError(pid)
    return ProcessRecord(pid=pid, start_ticks=found[1], marker=marker, log=str(log))


def is_running(rec: ProcessRecord) -> bool:
    """True while this very process runs: same pid, same start time, its command line
    still holds the marker. A zombie, or another process now holding the pid, does not."""
    found = _stat(rec.pid)
    if found is None or found[0] in ("Z", "X") or found[1] != rec.start_ticks:
        return False
    return rec.marker in _cmdline(rec.pid)


def stop(rec: ProcessRecord, *, timeout: float = 5.0) -> bool:
    """SIGTERM the process's group, SIGKILL after `timeout`; True when it was running."""
    if not is_running(rec):
        return False
    _signal(rec, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_running(rec):
            return True
        time.sleep(0.05)
    _signal(rec, signal.SIGKILL)
    deadline = time.monotonic() + 2.0
    while is_running(rec) and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


def _signal(rec: ProcessRecord, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        # Only a session leader we started has pgid == pid; anything else gets the signal
        # alone, never a group we did not make.
        if os.getpgid(rec.pid) == rec.pid:
            os.killpg(rec.pid, sig)
        else:
            os.kill(rec.pid, sig)


def spawn_detached(
    argv: list[str], *, log: Path, env: dict[str, str], marker: str
) -> ProcessRecord:
    """Start `argv` in its own session (no parent-death signal, no terminal), output to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    # Popen would reap it later if we were still around; we are not meant to be.
    return record(proc.pid, log, marker)
