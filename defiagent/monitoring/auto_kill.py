"""The kill switch trips itself on configured anomalies, with the reason and an alert.

Triggers: N consecutive failed transactions, a loss limit (daily loss or drawdown), a
signature that does not recover to the signer, an allowlisted contract whose code no
longer matches its entry, a drift alert, and a flood (more intents refused by the rate
limit or dropped unread than `flood_threshold` within `flood_window_seconds`: a strategy
that floods is hijacked or broken, and the rate limit alone would let it go on forever). Tripping writes the kill-switch file (so
every process sees it, and `kill-switch status` names the reason), records it in the
audit log, and raises a critical alert. Only an operator turns it off again.
"""

from __future__ import annotations

import collections
import threading

from pydantic import BaseModel, ConfigDict, Field

from defiagent.monitoring.interfaces import (
    Alert,
    AlertKind,
    AlertSeverity,
    AlertSink,
    AuditSink,
    NullAlertSink,
)
from defiagent.monitoring.kill_switch import KillSwitch


class AutoKillConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_consecutive_failures: int = Field(
        default=3, ge=1, description="failed or reverted transactions in a row"
    )
    on_loss_limit: bool = Field(default=True, description="max-daily-loss or max-drawdown fired")
    on_signature_mismatch: bool = True
    on_allowlist_failure: bool = Field(
        default=True, description="an allowlisted contract's code no longer matches its entry"
    )
    on_drift: bool = Field(default=False, description="live behaviour left the mandate")
    on_flood: bool = Field(
        default=True, description="too many intents rate-limited or dropped in a window"
    )
    flood_threshold: int = Field(
        default=100, ge=1, description="intents refused by the rate limit or dropped, per window"
    )
    flood_window_seconds: float = Field(default=60.0, gt=0)


class AutoKill:
    def __init__(
        self,
        kill_switch: KillSwitch,
        config: AutoKillConfig | None = None,
        *,
        audit: AuditSink,
        alerts: AlertSink | None = None,
        agent: str = "",
    ) -> None:
        self.kill_switch = kill_switch
        self.config = config or AutoKillConfig()
        self.audit = audit
        self.alerts = alerts or NullAlertSink()
        self.agent = agent
        self.failures = 0
        self._flood: collections.deque[tuple[float, int, str]] = collections.deque()
        self._lock = threading.Lock()  # the signer's alert hook may call from another thread

    def trip(self, trigger: str, reason: str) -> bool:
        """Turn the kill switch on (once); returns whether this call turned it on."""
        with self._lock:
            if self.kill_switch.is_on():
                return False
            self.kill_switch.set(True, reason=f"{trigger}: {reason}", changed_by="auto-kill")
        self.audit.record("auto-kill", {"trigger": trigger, "reason": reason})
        self.alerts.send(
            Alert(
                kind=AlertKind.KILL_SWITCH,
                severity=AlertSeverity.CRITICAL,
                title=f"kill switch tripped automatically: {trigger}",
                detail=reason,
                agent=self.agent,
                data={"trigger": trigger, "on": True},
            )
        )
        return True

    def transaction_failed(self, reason: str) -> bool:
        self.failures += 1
        limit = self.config.max_consecutive_failures
        if self.failures >= limit:
            return self.trip(
                "consecutive-failures",
                f"{self.failures} transactions failed in a row (limit {limit}); last: {reason}",
            )
        return False

    def transaction_succeeded(self) -> None:
        self.failures = 0

    def loss_limit(self, rule: str, reason: str) -> bool:
        return self.config.on_loss_limit and self.trip(rule, reason)

    def signature_mismatch(self, reason: str) -> bool:
        return self.config.on_signature_mismatch and self.trip("signature-mismatch", reason)

    def allowlist_failure(self, reason: str) -> bool:
        return self.config.on_allowlist_failure and self.trip("allowlist-verification", reason)

    def drift(self, reason: str) -> bool:
        return self.config.on_drift and self.trip("drift", reason)

    def flooded(self, strategy: str, count: int, now: float) -> bool:
        """`count` intents of `strategy` were refused by the rate limit or dropped unread."""
        c = self.config
        if not c.on_flood or count <= 0:
            return False
        self._flood.append((now, count, strategy))
        while self._flood and self._flood[0][0] <= now - c.flood_window_seconds:
            self._flood.popleft()
        total = sum(n for _, n, _ in self._flood)
        if total < c.flood_threshold:
            return False
        who = sorted({s for _, _, s in self._flood})
        return self.trip(
            "flood",
            f"{total} intents rate-limited or dropped in {c.flood_window_seconds:g} s "
            f"(limit {c.flood_threshold}), from {', '.join(who)}",
        )
