"""Alert sinks: a webhook (Slack-compatible or plain JSON), the log, and a dispatcher.

The dispatcher audits every alert, drops the ones below a severity, throttles repeats and
fans the rest out. The webhook sink never blocks the trading loop: `send()` only enqueues;
a daemon thread posts, retrying with backoff. A webhook URL is a credential (Slack puts
the token in its path), so it comes from an environment variable and only its
scheme://host ever reaches a log line or a repr.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

import requests
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_when_event_set,
    wait_exponential,
    wait_random,
)

from defiagent.errors import ConfigError
from defiagent.monitoring.interfaces import Alert, AlertSeverity, AlertSink, AuditSink
from defiagent.monitoring.metrics import AgentMetrics
from defiagent.monitoring.redaction import redact
from defiagent.net.tls import check_secure_url
from defiagent.net.tls import verify as tls_verify

log = logging.getLogger("defiagent.monitoring.alerts")

_RANK = {AlertSeverity.INFO: 0, AlertSeverity.WARNING: 1, AlertSeverity.CRITICAL: 2}
_EMOJI = {
    AlertSeverity.CRITICAL: ":rotating_light:",
    AlertSeverity.WARNING: ":warning:",
    AlertSeverity.INFO: ":information_source:",
}
_LOG_LEVEL = {
    AlertSeverity.CRITICAL: logging.CRITICAL,
    AlertSeverity.WARNING: logging.WARNING,
    AlertSeverity.INFO: logging.INFO,
}
_WORKER_PREFIX = "defiagent-alerts"


class AlertsConfig(BaseModel):
    """[alerts]: where alerts go and how hard the agent tries to deliver them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    webhook_url_env: str = Field(
        default="DEFIAGENT_ALERT_WEBHOOK_URL",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="environment variable holding the webhook URL (a credential: never in the file)",
    )
    webhook_url: str | None = Field(
        default=None,
        description="a secret reference to the webhook URL (docs/secrets.md); wins over webhook_url_env",
    )
    format: Literal["slack", "json"] = Field(
        default="slack", description="slack: incoming-webhook blocks; json: the alert as is"
    )
    timeout_seconds: float = Field(default=5, gt=0, le=120, description="per HTTP attempt")
    max_attempts: int = Field(
        default=5, ge=1, le=20, description="attempts per alert, first included"
    )
    backoff_initial_seconds: float = Field(
        default=0.5, ge=0, le=60, description="wait before the first retry; doubles each time"
    )
    backoff_max_seconds: float = Field(
        default=30, ge=0, le=3_600, description="cap on one wait, Retry-After included"
    )
    throttle_seconds: float = Field(
        default=300,
        ge=0,
        le=86_400,
        description="identical alerts within this window are counted, not resent",
    )
    min_severity: AlertSeverity = Field(
        default=AlertSeverity.WARNING, description="alerts below this are only audited"
    )
    queue_size: int = Field(
        default=1_000,
        ge=1,
        le=100_000,
        description="alerts waiting for the webhook; more are dropped",
    )

    @field_validator("webhook_url")
    @classmethod
    def _reference(cls, value: str | None) -> str | None:
        from defiagent.secrets.reference import check_reference

        return None if value is None else check_reference(value)

    @model_validator(mode="after")
    def _backoff_order(self) -> AlertsConfig:
        if self.backoff_max_seconds < self.backoff_initial_seconds:
            raise ValueError("backoff_max_seconds must be at least backoff_initial_seconds")
        return self


# --- payloads ---------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    # Big integers (wei) lose precision in JSON readers: send them as strings.
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**53:
        return str(value)
    return value


def alert_json(alert: Alert) -> dict[str, Any]:
    """The alert as redacted, JSON-safe data."""
    return redact(_jsonable(alert.model_dump(mode="json")))


def _escape(text: str) -> str:
    # Slack mrkdwn control characters; escaping also defuses <!channel>-style mentions.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _figure(value: Any) -> str:
    if isinstance(value, str | int | float | bool) or value is None:
        return str(value)
    return json.dumps(value, sort_keys=True, default=str)


def slack_payload(alert: Alert) -> dict[str, Any]:
    """A Slack incoming-webhook message; the whole alert rides along under "defiagent"."""
    data = alert_json(alert)
    severity = AlertSeverity(data["severity"])
    emoji = _EMOJI[severity]
    title = _escape(data["title"])
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": _cut(f"{emoji} {data['title']}", 150),
                "emoji": True,
            },
        }
    ]
    # Slack's limits: 10 fields of 2000 characters, section text of 3000.
    fields = [
        {"type": "mrkdwn", "text": _cut(f"*{_escape(k)}*\n{_escape(_figure(v))}", 2_000)}
        for k, v in list(data["data"].items())[:10]
    ]
    section: dict[str, Any] = {}
    if data["detail"]:
        section["text"] = {"type": "mrkdwn", "text": _cut(_escape(data["detail"]), 3_000)}
    if fields:
        section["fields"] = fields
    if section:
        blocks.append({"type": "section", **section})
    context = [f"*{data['kind']}*", f"severity *{severity.value}*"]
    if data["agent"]:
        context.append(f"agent `{_escape(data['agent'])}`")
    if data["strategy"]:
        context.append(f"strategy `{_escape(data['strategy'])}`")
    context.append(_escape(data["at"]))
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]}
    )
    payload = {
        "text": _cut(f"{emoji} [{severity.value.upper()}] {title}", 3_000),
        "blocks": blocks,
        "defiagent": data,
    }
    return redact(payload)


# --- the webhook sink -------------------------------------------------------------------


def webhook_origin(url: str) -> str:
    """scheme://host[:port]: the only part of a webhook URL that may be shown."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


def valid_webhook_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a malformed port
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and not any(c.isspace() for c in url)
    )


class _QuietTransport(logging.Filter):
    # urllib3 logs the request path at DEBUG, and Slack's token is the path: drop urllib3's
    # records from our worker threads only, every other user of urllib3 keeps its logs.
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.threadName or "").startswith(_WORKER_PREFIX)


_QUIET = _QuietTransport()
for _name in ("urllib3.connectionpool", "urllib3.util.retry", "urllib3.poolmanager"):
    if _QUIET not in logging.getLogger(_name).filters:
        logging.getLogger(_name).addFilter(_QUIET)


class _Retryable(Exception):
    """An attempt that may succeed later: connection error, timeout, 5xx, 429."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class _Permanent(Exception):
    """An attempt that cannot succeed by trying again (a malformed request, say)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _retry_after(value: str | None) -> float | None:
    """A numeric Retry-After in seconds; an HTTP date or garbage falls back to backoff."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


_STOP = object()


class WebhookAlertSink:
    """Implements AlertSink: posts each alert as JSON to a webhook from a daemon thread."""

    def __init__(
        self,
        url: str | Callable[[], str],
        *,
        timeout: float = 5,
        max_attempts: int = 5,
        backoff_initial: float = 0.5,
        backoff_max: float = 30,
        format: Literal["slack", "json"] = "slack",
        queue_size: int = 1_000,
    ) -> None:
        # A callable gives the current URL on each post (a secret handle: rotated on SIGHUP).
        if isinstance(url, str):
            fixed = url

            def fixed_url() -> str:
                return fixed

            self._url_now: Callable[[], str] = fixed_url
        else:
            self._url_now = url
        url = self._url_now()
        if not valid_webhook_url(url):
            raise ConfigError("the alert webhook URL is not an http(s) URL")
        if format not in ("slack", "json"):
            raise ConfigError(f"unknown alert payload format {format!r}; use slack or json")
        self.origin = webhook_origin(url)
        self.format = format
        self._timeout = timeout
        self._max_attempts = max(1, max_attempts)
        self._backoff_max = backoff_max
        # Doubling waits plus up to half the first one of jitter, so a fleet of agents
        # does not retry in lockstep; _wait caps the sum at backoff_max.
        self._backoff = wait_exponential(multiplier=backoff_initial, max=backoff_max) + wait_random(
            0, backoff_initial / 2
        )
        self.delivered = 0
        self.failed = 0
        self.dropped = 0
        self.recent_waits: deque[float] = deque(maxlen=64)  # backoff waits taken, newest last
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, queue_size))
        self._counts = threading.Lock()
        self._idle = threading.Condition()
        self._pending = 0
        self._stop = threading.Event()
        self._session = requests.Session()
        self._session.verify = tls_verify()  # never off; [tls] ca_bundle may add a CA
        self._session.headers.update(
            {"Content-Type": "application/json", "User-Agent": "defiagent-alerts"}
        )
        self._worker = threading.Thread(
            target=self._run, name=f"{_WORKER_PREFIX}-{self.origin}", daemon=True
        )
        self._worker.start()

    def __repr__(self) -> str:
        return (
            f"WebhookAlertSink({self.origin}, format={self.format}, delivered={self.delivered}, "
            f"failed={self.failed}, dropped={self.dropped})"
        )

    # -- the caller's side: never blocks, never raises --

    def send(self, alert: Alert) -> None:
        try:
            if self._stop.is_set():
                self._drop(f"the sink is closed; alert {alert.kind} not sent")
                return
            payload = slack_payload(alert) if self.format == "slack" else alert_json(alert)
            body = json.dumps(payload, separators=(",", ":"), default=str).encode()
            with self._idle:
                self._pending += 1
            try:
                self._queue.put_nowait((str(alert.kind), body))
            except queue.Full:
                self._settle(1)
                self._drop(
                    f"the alert queue is full ({self._queue.maxsize}); alert {alert.kind} dropped"
                )
        except Exception as exc:  # the trading loop must not see an alerting failure
            with self._counts:
                self.failed += 1
            log.error(
                "alert webhook %s: could not queue an alert (%s)", self.origin, type(exc).__name__
            )

    def flush(self, timeout: float = 10) -> bool:
        """Wait until every queued alert is delivered or given up; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout=timeout)

    def close(self, timeout: float = 2) -> None:
        """Flush briefly, stop the worker; alerts still queued are counted as dropped."""
        if self._stop.is_set():
            return
        self.flush(timeout)
        self._stop.set()  # also cuts short a retry's backoff wait
        with contextlib.suppress(queue.Full):  # else the worker sees the flag after its alert
            self._queue.put_nowait(_STOP)
        self._worker.join(timeout)
        left = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                left += 1
        if left:
            self._settle(left)
            self._drop(f"{left} queued alert(s) not sent: the sink was closed", count=left)
        self._session.close()

    def _drop(self, why: str, count: int = 1) -> None:
        with self._counts:
            self.dropped += count
        log.warning("alert webhook %s: %s", self.origin, why)

    def _settle(self, n: int) -> None:
        with self._idle:
            self._pending -= n
            self._idle.notify_all()

    # -- the worker's side --

    def _run(self) -> None:
        while not self._stop.is_set():
            item = self._queue.get()
            if item is _STOP:
                return
            kind, body = item
            try:
                ok = self._deliver(kind, body)
            except Exception as exc:  # never let the worker die
                ok = False
                log.error("alert webhook %s: %s while sending", self.origin, type(exc).__name__)
            with self._counts:
                if ok:
                    self.delivered += 1
                else:
                    self.failed += 1
            self._settle(1)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retryable) and exc.retry_after is not None:
            return min(exc.retry_after, self._backoff_max)
        return min(self._backoff(state), self._backoff_max)

    def _sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)  # tenacity's sleep returns nothing; Event.wait a bool

    def _before_sleep(self, state: RetryCallState) -> None:
        wait = state.next_action.sleep if state.next_action else 0.0
        self.recent_waits.append(wait)
        exc = state.outcome.exception() if state.outcome else None
        reason = exc.reason if isinstance(exc, _Retryable) else type(exc).__name__
        log.warning(
            "alert webhook %s: attempt %d/%d failed (%s); retrying in %.2f s",
            self.origin,
            state.attempt_number,
            self._max_attempts,
            reason,
            wait,
        )

    def _deliver(self, kind: str, body: bytes) -> bool:
        retrying = Retrying(
            stop=stop_after_attempt(self._max_attempts) | stop_when_event_set(self._stop),
            wait=self._wait,
            retry=retry_if_exception_type(_Retryable),
            sleep=self._sleep,  # close() wakes a sleeping retry
            before_sleep=self._before_sleep,
            reraise=True,
        )
        try:
            status = retrying(self._post, body)
        except _Retryable as exc:
            log.error("alert webhook %s: gave up on a %s alert (%s)", self.origin, kind, exc.reason)
            return False
        except _Permanent as exc:
            log.error(
                "alert webhook %s: could not send a %s alert (%s)", self.origin, kind, exc.reason
            )
            return False
        if 200 <= status < 300:
            return True
        # A 4xx (or a redirect we do not follow) will not succeed by trying again. The body
        # is not logged: some servers echo the request path, which holds the token.
        log.error(
            "alert webhook %s: rejected a %s alert with HTTP %d; not retried "
            "(check the URL and the payload format)",
            self.origin,
            kind,
            status,
        )
        return False

    def _post(self, body: bytes) -> int:
        try:
            # No redirects: a redirected POST would carry the alert to another address.
            with self._session.post(
                self._url_now(),
                data=body,
                timeout=self._timeout,
                allow_redirects=False,
                verify=self._session.verify,  # else $REQUESTS_CA_BUNDLE would override it
            ) as resp:
                status = resp.status_code
                retry_after = _retry_after(resp.headers.get("Retry-After"))
        except (requests.ConnectionError, requests.Timeout) as exc:
            # Only the class name: requests' messages quote the full URL.
            raise _Retryable(type(exc).__name__) from None
        except requests.RequestException as exc:
            raise _Permanent(type(exc).__name__) from None
        if status == 429 or status >= 500:
            raise _Retryable(f"HTTP {status}", retry_after)
        return status


# --- the log sink -----------------------------------------------------------------------


def _one_line(value: Any) -> Any:
    return " ".join(value.splitlines()) if isinstance(value, str) else value


class LogAlertSink:
    """Implements AlertSink: one log line per alert, at the level its severity maps to."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or logging.getLogger("defiagent.alerts")

    def send(self, alert: Alert) -> None:
        try:
            # One line, whatever the strings hold: a newline could forge a log entry.
            data = {k: _one_line(v) for k, v in alert_json(alert).items()}
            where = " ".join(f"{k}={data[k]}" for k in ("agent", "strategy") if data[k])
            figures = json.dumps(data["data"], sort_keys=True, default=str) if data["data"] else ""
            self._log.log(
                _LOG_LEVEL[alert.severity],
                "ALERT [%s] %s: %s%s%s%s",
                data["severity"],
                data["kind"],
                data["title"],
                f" - {data['detail']}" if data["detail"] else "",
                f" ({where})" if where else "",
                f" {figures}" if figures else "",
            )
        except Exception as exc:
            log.error("could not log an alert (%s)", type(exc).__name__)


# --- the dispatcher ---------------------------------------------------------------------


class AlertDispatcher:
    """Implements AlertSink: audit, filter by severity, throttle repeats, fan out."""

    def __init__(
        self,
        sinks: Iterable[AlertSink],
        *,
        audit: AuditSink | None = None,
        metrics: AgentMetrics | None = None,
        throttle_seconds: float = 300,
        min_severity: AlertSeverity = AlertSeverity.WARNING,
        clock: Callable[[], float] = time.time,
        keep: int = 100,
    ) -> None:
        self.sinks = list(sinks)
        self._audit = audit
        self._metrics = metrics
        self._throttle = throttle_seconds
        self._min = AlertSeverity(min_severity)
        self._clock = clock
        self._keep = keep
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}  # key -> when it was last fanned out
        self._suppressed: dict[str, int] = {}  # key -> throttled since then
        self.sent: list[Alert] = []  # the last `keep` alerts fanned out (the demo prints them)

    def send(self, alert: Alert) -> None:
        try:
            self._dispatch(alert)
        except Exception as exc:  # an alert must never stop the loop that raised it
            log.error("alert dispatch failed (%s)", type(exc).__name__)

    def _decide(self, alert: Alert) -> tuple[str, int]:
        """("yes" | "throttled" | "below-threshold", suppressed count)."""
        if _RANK[alert.severity] < _RANK[self._min]:
            return "below-threshold", 0
        key = alert.key
        with self._lock:
            now = self._clock()
            last = self._last.get(key)
            if last is not None and now - last < self._throttle:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return "throttled", self._suppressed[key]
            if len(self._last) > 1_024:  # titles may carry figures: forget expired keys
                for old in [k for k, t in self._last.items() if now - t >= self._throttle]:
                    self._last.pop(old, None)
                    self._suppressed.pop(old, None)
            self._last[key] = now
            return "yes", self._suppressed.pop(key, 0)

    def _dispatch(self, alert: Alert) -> None:
        outcome, suppressed = self._decide(alert)
        if self._audit is not None:
            # On a delivered alert, `suppressed` is how many identical ones were throttled
            # since the previous delivery; on a throttled one, the running count.
            payload = alert.model_dump(mode="json")
            payload.update(suppressed=suppressed, outcome=outcome)
            try:
                self._audit.record("alert", payload)
            except Exception as exc:
                # Still deliver: an operator hearing of the problem matters more here.
                log.error("could not audit an alert (%s: %s)", type(exc).__name__, exc)
        if self._metrics is not None:
            self._metrics.alerts.labels(kind=str(alert.kind), delivered=outcome).inc()
        if outcome != "yes":
            return
        out = alert
        if suppressed:
            out = alert.model_copy(update={"data": {**alert.data, "suppressed": suppressed}})
        with self._lock:
            self.sent.append(out)
            del self.sent[: -self._keep]
        for sink in self.sinks:
            try:
                sink.send(out)
            except Exception as exc:
                log.error("alert sink %r failed (%s)", sink, type(exc).__name__)

    def flush(self, timeout: float = 10) -> bool:
        deadline = time.monotonic() + timeout
        ok = True
        for sink in self.sinks:
            flush = getattr(sink, "flush", None)
            if flush is not None:
                ok = bool(flush(max(0.0, deadline - time.monotonic()))) and ok
        return ok

    def close(self) -> None:
        for sink in self.sinks:
            close = getattr(sink, "close", None)
            if close is not None:
                try:
                    close()
                except Exception as exc:
                    log.error("alert sink %r did not close cleanly (%s)", sink, type(exc).__name__)


def build_alerts(
    cfg: AlertsConfig,
    *,
    audit: AuditSink | None = None,
    metrics: AgentMetrics | None = None,
    environ: Mapping[str, str] = os.environ,
) -> AlertDispatcher:
    """The log sink always; a webhook too when the variable `cfg.webhook_url_env` is set."""
    sinks: list[AlertSink] = [LogAlertSink()]
    url = environ.get(cfg.webhook_url_env, "").strip()
    url_now: str | Callable[[], str] = url
    if cfg.webhook_url:
        from defiagent import secrets

        handle = secrets.current().handle(
            cfg.webhook_url, what=f"alerts.webhook_url ({cfg.webhook_url})"
        )
        url = handle.get().strip()
        url_now = lambda: handle.get().strip()  # noqa: E731
        if not valid_webhook_url(url):
            raise ConfigError(
                f"alerts.webhook_url ({cfg.webhook_url}) does not hold an http(s) URL"
            )
    if url:
        if not valid_webhook_url(url):
            raise ConfigError(
                f"the environment variable {cfg.webhook_url_env} is not an http(s) URL; "
                "set it to the webhook address or unset it"
            )
        check_secure_url(url, what=f"the alert webhook {webhook_origin(url)}")
        sinks.append(
            WebhookAlertSink(
                url_now,
                timeout=cfg.timeout_seconds,
                max_attempts=cfg.max_attempts,
                backoff_initial=cfg.backoff_initial_seconds,
                backoff_max=cfg.backoff_max_seconds,
                format=cfg.format,
                queue_size=cfg.queue_size,
            )
        )
    return AlertDispatcher(
        sinks,
        audit=audit,
        metrics=metrics,
        throttle_seconds=cfg.throttle_seconds,
        min_severity=cfg.min_severity,
    )
