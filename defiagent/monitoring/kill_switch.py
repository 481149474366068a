"""The kill switch: a state file in the agent's state dir, written atomically.

`is_on()` reads the file every time, so `defiagent kill-switch on` in another terminal stops
a running agent before its next signature. A file that cannot be read or parsed counts as
ON (fail closed); only a missing file means "never switched on".
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from defiagent.errors import InfraError
from defiagent.monitoring.interfaces import AuditSink

FILENAME = "kill-switch.json"


class KillSwitchStatus(BaseModel):
    model_config = ConfigDict(frozen=True)

    on: bool
    reason: str = ""
    changed_at: str | None = None
    changed_by: str | None = None
    path: str = ""
    readable: bool = True


class KillSwitch:
    """Implements KillSwitchState."""

    def __init__(self, state_dir: Path | str, *, audit: AuditSink | None = None) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / FILENAME
        self.audit = audit

    def status(self) -> KillSwitchStatus:
        if not self.path.exists():
            return KillSwitchStatus(on=False, path=str(self.path))
        try:
            data = json.loads(self.path.read_text())
            if not isinstance(data, dict) or not isinstance(data.get("on"), bool):
                raise ValueError("no boolean 'on' field")
            return KillSwitchStatus(
                on=data["on"],
                reason=str(data.get("reason", "")),
                changed_at=data.get("changed_at"),
                changed_by=data.get("changed_by"),
                path=str(self.path),
            )
        except (OSError, ValueError) as exc:
            return KillSwitchStatus(
                on=True,
                reason=f"the kill-switch file cannot be read ({exc}); treated as on",
                path=str(self.path),
                readable=False,
            )

    def is_on(self) -> bool:
        return self.status().on

    def set(self, on: bool, *, reason: str = "", changed_by: str = "cli") -> KillSwitchStatus:
        body = {
            "on": on,
            "reason": reason,
            "changed_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "changed_by": changed_by,
        }
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(prefix=".kill-switch-", dir=self.state_dir)
            try:
                with os.fdopen(fd, "w") as fh:
                    os.fchmod(fh.fileno(), 0o600)  # a state file: the owner's only
                    json.dump(body, fh)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            dir_fd = os.open(self.state_dir, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise InfraError(f"the kill switch could not be written to {self.path}: {exc}") from exc
        if self.audit is not None:
            self.audit.record("kill-switch", body)
        return self.status()
