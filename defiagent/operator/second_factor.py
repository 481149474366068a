"""`SecondFactor`: is a code required here, and is this one good? Every attempt is audited.

A code is checked against the previous, current and next 30-second step (pyotp's
`valid_window=1`), every candidate compared in constant time. It is accepted only for a
step later than the last accepted one (no replay), and not at all while failures are
locked out. The audit log gets kind "operator-2fa" with the action and the outcome
(accepted, failed, replayed, locked-out, missing, unusable), never the code or the secret.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from pathlib import Path

from defiagent.errors import DefiagentError, Refused
from defiagent.monitoring.interfaces import AuditSink
from defiagent.operator.enrolment import Enrolment, EnrolmentStore
from defiagent.operator.files import state_lock
from defiagent.operator.ratelimit import FailureLimiter, iso

AUDIT_KIND = "operator-2fa"
VALID_WINDOW = 1  # steps either side of now (clock drift, a code typed as it rolls over)
HOW_TO_GIVE = (
    "type it at the prompt on a terminal, pipe it with --otp-stdin, or set DEFIAGENT_OTP_CODE"
)


def matching_counters(enrolment: Enrolment, code: str, now: float) -> list[int]:
    """The time steps within the window whose code equals `code` (all compared, in constant time)."""
    totp = enrolment.totp()
    given = code.encode("utf-8", "replace")
    current = totp.timecode(now)
    matches = []
    for counter in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(counter).encode(), given):
            matches.append(counter)
    return matches


def now() -> float:
    """The clock codes are checked against (tests put a fake one here)."""
    return time.time()


def normalize(code: str | None) -> str:
    return "".join((code or "").split())  # "123 456" as an app shows it is fine


class SecondFactor:
    """The operator's TOTP for one state dir. `required` is True when an operator is enrolled."""

    def __init__(
        self,
        state_dir: Path | str,
        *,
        audit: AuditSink | None = None,
        clock: Callable[[], float] | None = None,
        limiter: FailureLimiter | None = None,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.store = EnrolmentStore(self.state_dir)
        self.audit = audit
        self.clock = clock
        self.limiter = limiter or FailureLimiter(self.state_dir)

    @property
    def required(self) -> bool:
        return self.store.exists()

    def _record(self, action: str, outcome: str, **extra) -> None:
        if self.audit is not None:
            self.audit.record(AUDIT_KIND, {"action": action, "outcome": outcome, **extra})

    def verify(self, code: str | None, action: str) -> None:
        """Accept `code` for `action` or raise Refused saying why, in one sentence."""
        with state_lock(self.state_dir):
            try:
                enrolment = self.store.load()
            except DefiagentError as exc:
                self._record(action, "unusable", reason=str(exc))
                raise
            if enrolment is None:
                raise Refused(
                    f"{action} needs the operator's code but no operator is enrolled in "
                    f"{self.state_dir}",
                    remedy="enroll with `defiagent operator enroll`",
                )
            given = normalize(code)
            if not given:
                self._record(action, "missing")
                raise Refused(f"{action} needs the operator's current code ({HOW_TO_GIVE})")
            at = (self.clock or now)()
            until = self.limiter.locked_until(at)
            if until is not None:
                self._record(action, "locked-out", locked_until=iso(until))
                raise Refused(
                    f"too many wrong operator codes: {action} is locked out until {iso(until)}"
                )
            matches = matching_counters(enrolment, given, at)
            last = enrolment.last_counter
            fresh = [c for c in matches if last is None or c > last]
            if not fresh:
                outcome = "replayed" if matches else "failed"
                failures = self.limiter.record_failure(at)
                self._record(action, outcome, failures_in_window=failures)
                left = self.limiter.max_failures - failures
                tail = (
                    f"; attempts are locked out until {iso(self.limiter.locked_until(at) or at)}"
                    if left <= 0
                    else f" ({failures} failed attempt(s) of {self.limiter.max_failures} allowed "
                    f"in {int(self.limiter.window_seconds // 60)} minutes)"
                )
                what = "was already used once; wait for the next one" if matches else "is wrong"
                raise Refused(f"the operator code for {action} {what}{tail}")
            self.store.save(enrolment.model_copy(update={"last_counter": max(fresh)}))
            self.limiter.clear()
            self._record(action, "accepted")
