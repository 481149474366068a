"""The small interfaces the pipeline writes to; implementations live beside this file."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field


class AuditSink(Protocol):
    """Append one step of the pipeline to the audit trail. Never pass a secret."""

    # -> object: what a sink returns is its own (AuditLog returns the record it wrote); the
    # pipeline never reads it.
    def record(self, kind: str, payload: dict[str, Any]) -> object: ...


class KillSwitchState(Protocol):
    """Read the kill switch. Checked before signing and again before sending."""

    def is_on(self) -> bool: ...


class NullAuditSink:
    def record(self, kind: str, payload: dict[str, Any]) -> None:
        return None


# --- alerts ---------------------------------------------------------------------------
# Shared by the alert sinks (alerts.py), the agent loop and the automatic kill switch.


class AlertSeverity(StrEnum):
    CRITICAL = "critical"  # funds may be at risk, or the agent stopped itself
    WARNING = "warning"  # a limit or a check fired; the agent kept its funds
    INFO = "info"


class AlertKind(StrEnum):
    SECURITY_REFUSAL = "security-refusal"  # a guard rule of the security kind refused
    TX_FAILED = "tx-failed"  # reverted on chain, or could not be sent
    TX_STUCK = "tx-stuck"  # sent, no receipt in time
    SIGNATURE_MISMATCH = "signature-mismatch"  # the signer returned a signature for another key
    LIMIT_BREACH = "limit-breach"  # a risk limit fired (loss, drawdown, gas, trades, ...)
    KILL_SWITCH = "kill-switch"  # turned on (by hand or automatically) or off
    ALLOWLIST = "allowlist-verification"  # an entry no longer verifies (code drift, bad sig)
    DRIFT = "drift"  # live behaviour left the strategy's mandate envelope
    PRICE = "price-sanity"  # sources disagree or are stale
    POSITION_EXIT = "position-exit"  # the agent closed a position (stop-loss, take-profit)
    STRATEGY = "strategy"  # a strategy timed out, crashed, answered garbage, or was paused


class Alert(BaseModel):
    """One alert. `data` carries figures, never a secret (it is redacted again on send)."""

    model_config = ConfigDict(frozen=True)

    kind: AlertKind
    severity: AlertSeverity
    title: str  # one line a person reads first
    detail: str = ""  # the reason, with its figures
    agent: str = ""
    strategy: str = ""
    data: dict[str, Any] = Field(default_factory=dict)
    at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def key(self) -> str:
        """What makes two alerts 'the same' for throttling."""
        return f"{self.kind}|{self.strategy}|{self.title}"


class AlertSink(Protocol):
    """Deliver an alert. Must not raise and must not block the trading loop for long."""

    def send(self, alert: Alert) -> None: ...


class NullAlertSink:
    def send(self, alert: Alert) -> None:
        return None
