"""Private state files: written atomically with mode 0600, refused when others can read them."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from defiagent.errors import InfraError, Refused

LOCK_FILE = "operator.lock"


def write_private_json(path: Path, data: Any) -> None:
    """Write `data` to `path` as JSON, mode 0600, by rename: readers see old or new, never half.
    A missing folder is made 0700 (a state dir)."""
    text = json.dumps(data, indent=1, sort_keys=True)
    write_atomic(path, text, mode=0o600, dir_mode=0o700)


def write_atomic(
    path: Path, text: str, *, mode: int, what: str | None = None, dir_mode: int = 0o777
) -> None:
    """Write `text` to `path` with `mode` by rename, fsynced (the file and its folder); a
    missing folder is made with `dir_mode` (less the umask)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=dir_mode)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)  # created 0600
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise InfraError(f"{what or path} could not be written: {exc}") from exc


def check_private(path: Path, what: str, *, forbidden: int = 0o077) -> None:
    """Refuse a file that other users may read (or write): the way ssh refuses a loose key."""
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        raise Refused(f"the {what} {path} is not a regular file")
    mode = stat.S_IMODE(info.st_mode)
    if mode & forbidden:
        raise Refused(
            f"the {what} {path} is open to group or others (mode {mode:04o})",
            remedy=f"run: chmod 600 {path}",
        )
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise Refused(f"the {what} {path} belongs to another user")


def read_private_json(path: Path, what: str, *, forbidden: int = 0o077) -> Any:
    """The JSON in `path` after the permission check; None when the file does not exist."""
    path = Path(path)
    if not path.exists():
        return None
    check_private(path, what, forbidden=forbidden)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise Refused(f"the {what} {path} cannot be read ({exc})") from exc


@contextlib.contextmanager
def state_lock(state_dir: Path) -> Iterator[None]:
    """An exclusive lock on the operator's files, across processes (flock)."""
    state_dir = Path(state_dir)
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise InfraError(f"the operator lock in {state_dir} cannot be opened: {exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
