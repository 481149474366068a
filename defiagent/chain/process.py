"""Child processes that must never outlive their parent (Linux).

Two layers: the child gets PR_SET_PDEATHSIG=SIGKILL, so the kernel kills it the moment
the parent dies, even by SIGKILL; and `exit_when_orphaned` lets a long-lived parent
(pytest, the agent) end itself when *its* parent goes away, so killing `make test` with
SIGKILL tears down the whole tree instead of leaving it running.
"""

from __future__ import annotations

import ctypes
import os
import signal
import threading

PR_SET_PDEATHSIG = 1


def _libc():
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:  # not glibc Linux: the watchdog layer still applies
        return None


def die_with_parent_preexec(parent_pid: int):
    """A preexec_fn for subprocess.Popen: new process group + SIGKILL on parent death."""

    def preexec() -> None:
        os.setpgid(0, 0)
        libc = _libc()
        if libc is not None:
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        # The parent may have died between fork and prctl: then nobody would signal us.
        if os.getppid() != parent_pid:
            os._exit(1)

    return preexec


def exit_when_orphaned(poll_seconds: float = 0.5, on_exit=None) -> threading.Thread:
    """Start a daemon thread that ends this process when its parent process dies."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            threading.Event().wait(poll_seconds)
            if os.getppid() != parent:
                if on_exit is not None:
                    try:
                        on_exit()
                    finally:
                        os._exit(137)
                os._exit(137)

    thread = threading.Thread(target=watch, name="orphan-watchdog", daemon=True)
    thread.start()
    return thread
