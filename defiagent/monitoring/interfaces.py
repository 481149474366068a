"""The small interfaces the pipeline writes to; implementations live beside this file."""

from __future__ import annotations

from typing import Any, Protocol


class AuditSink(Protocol):
    """Append one step of the pipeline to the audit trail. Never pass a secret."""

    def record(self, kind: str, payload: dict[str, Any]) -> None: ...


class KillSwitchState(Protocol):
    """Read the kill switch. Checked before signing and again before sending."""

    def is_on(self) -> bool: ...


class NullAuditSink:
    def record(self, kind: str, payload: dict[str, Any]) -> None:
        return None
