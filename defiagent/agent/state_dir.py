"""The agent's state dir is private: 0700, its own user's, every file in it 0600.

It holds the audit log, the journal (with the raw signed transactions), the kill switch,
the operator's TOTP enrolment and the limits it approved. The way ssh treats ~/.ssh, the
agent refuses to start with a state dir others could read, enter or write, instead of
quietly running with one.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from defiagent.errors import ConfigError, InfraError, Refused
from defiagent.operator.files import check_private


def not_a_folder(path: Path) -> ConfigError:
    return ConfigError(
        f"the state dir {path} is a file, not a folder",
        remedy="give the agent's state dir: state_dir in agent.toml, or --state-dir",
    )


def existing_state_dir(path: Path) -> Path:
    """A state dir a command reads (status, report): it may not exist yet, but a file in
    its place is a mistyped path, never read as an empty state dir."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise not_a_folder(path)
    return path


def ensure_private_state_dir(path: Path) -> None:
    """Create `path` 0700 if missing; refuse (Refused) a state dir that group or others may
    read, write or enter, one owned by another user, or a file in it others may read."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        try:
            path.mkdir(parents=True, mode=0o700)
            os.chmod(path, 0o700)  # exactly, whatever the umask
        except FileExistsError:
            pass  # made at the same moment by another process: checked below like any other
        except OSError as exc:
            raise InfraError(f"the state dir {path} cannot be created: {exc}") from exc
    try:
        info = path.stat()
    except OSError as exc:
        raise InfraError(f"the state dir {path} cannot be read: {exc}") from exc
    if not stat.S_ISDIR(info.st_mode):
        raise not_a_folder(path)
    if info.st_uid != os.getuid():
        raise Refused(
            f"the state dir {path} belongs to another user (uid {info.st_uid})",
            remedy="run the agent as that user, or give it a state dir of its own",
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise Refused(
            f"the state dir {path} is open to group or others (mode {mode:04o}), and it holds "
            "the audit log, the journal and the operator's files",
            remedy=f"run: chmod 700 {path}",
        )
    for folder, _dirs, files in os.walk(path):
        for name in files:
            file = Path(folder) / name
            if stat.S_ISREG(os.lstat(file).st_mode):
                check_private(file, "state file")
