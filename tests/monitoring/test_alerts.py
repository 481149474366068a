"""Alert sinks against a real local HTTP server: delivery, retries, refusals, secrets."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from defiagent.errors import ConfigError
from defiagent.monitoring.alerts import (
    AlertDispatcher,
    AlertsConfig,
    LogAlertSink,
    WebhookAlertSink,
    build_alerts,
    slack_payload,
)
from defiagent.monitoring.audit_log import AuditLog, verify_audit_log
from defiagent.monitoring.interfaces import Alert, AlertKind, AlertSeverity
from defiagent.monitoring.metrics import AgentMetrics
from defiagent.monitoring.redaction import REDACTED

TOKEN_PATH = "/services/T0000/B0000/XXXXsecretTOKENxxxx"
FAST = {"timeout": 1.0, "backoff_initial": 0.02, "backoff_max": 0.2}


class Recorder:
    """What the server saw, and what it answers next (a script of statuses, then 200)."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.script: list[tuple[int, dict[str, str]]] = []
        self.gate: threading.Event | None = None  # hold every answer until set
        self.lock = threading.Lock()
        self.seen = threading.Condition(self.lock)

    def answer(self, *statuses: int | tuple[int, dict[str, str]]) -> None:
        self.script = [s if isinstance(s, tuple) else (s, {}) for s in statuses]

    def wait_for(self, n: int, timeout: float = 5) -> bool:
        with self.seen:
            return self.seen.wait_for(lambda: len(self.requests) >= n, timeout=timeout)

    def bodies(self) -> list[dict]:
        return [json.loads(r["body"]) for r in self.requests]


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        rec: Recorder = self.server.recorder  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with rec.seen:
            rec.requests.append(
                {
                    "path": self.path,
                    "headers": dict(self.headers),
                    "body": body,
                    "at": time.monotonic(),
                }
            )
            status, headers = rec.script.pop(0) if rec.script else (200, {})
            rec.seen.notify_all()
        if rec.gate is not None:
            rec.gate.wait(5)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args) -> None:
        return None


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.recorder = Recorder()  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}{TOKEN_PATH}"
    yield httpd.recorder, url  # type: ignore[attr-defined]
    if httpd.recorder.gate is not None:  # type: ignore[attr-defined]
        httpd.recorder.gate.set()  # type: ignore[attr-defined]
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def make_sink():
    sinks: list[WebhookAlertSink] = []

    def make(url: str, **kw) -> WebhookAlertSink:
        sink = WebhookAlertSink(url, **{**FAST, **kw})
        sinks.append(sink)
        return sink

    yield make
    for sink in sinks:
        sink.close(timeout=0.5)


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}{TOKEN_PATH}"


def alert(**kw) -> Alert:
    base = {
        "kind": AlertKind.LIMIT_BREACH,
        "severity": AlertSeverity.WARNING,
        "title": "daily loss limit reached",
        "detail": "loss 120 USDC over a 100 USDC limit",
        "agent": "agent-1",
        "strategy": "mean-reversion",
        "data": {"loss": 120.0, "limit": 100.0, "wei": 10**20},
    }
    return Alert(**{**base, **kw})


# --- the webhook sink -------------------------------------------------------------------


def test_delivers_a_slack_payload(server, make_sink):
    rec, url = server
    sink = make_sink(url)
    sink.send(alert())
    assert sink.flush(5)
    assert (sink.delivered, sink.failed, sink.dropped) == (1, 0, 0)
    (req,) = rec.requests
    assert req["path"] == TOKEN_PATH
    assert req["headers"]["Content-Type"] == "application/json"
    body = json.loads(req["body"])
    assert "daily loss limit reached" in body["text"]
    assert ":warning:" in body["text"]
    types = [b["type"] for b in body["blocks"]]
    assert types == ["header", "section", "context"]
    fields = "\n".join(f["text"] for f in body["blocks"][1]["fields"])
    assert "*loss*\n120.0" in fields
    assert "agent-1" in body["blocks"][2]["elements"][0]["text"]
    assert body["defiagent"]["kind"] == "limit-breach"
    assert body["defiagent"]["severity"] == "warning"
    assert body["defiagent"]["data"]["wei"] == str(10**20)  # exact, not a float


def test_json_format_posts_the_alert_as_is(server, make_sink):
    rec, url = server
    sink = make_sink(url, format="json")
    sink.send(alert(severity=AlertSeverity.CRITICAL))
    assert sink.flush(5)
    (body,) = rec.bodies()
    assert body["kind"] == "limit-breach"
    assert body["severity"] == "critical"
    assert "blocks" not in body


def test_slack_payload_escapes_mentions_and_keeps_limits():
    msg = slack_payload(
        alert(title="<!channel> & x", data={f"k{i}": i for i in range(15)}, detail="")
    )
    assert "<!channel>" not in msg["text"]
    assert "&lt;!channel&gt; &amp; x" in msg["text"]
    section = msg["blocks"][1]
    assert "text" not in section  # no detail: fields only
    assert len(section["fields"]) == 10


def test_retries_5xx_with_growing_backoff(server, make_sink):
    rec, url = server
    rec.answer(500, 503)
    sink = make_sink(url, backoff_initial=0.05, backoff_max=1.0)
    sink.send(alert())
    assert sink.flush(5)
    assert len(rec.requests) == 3
    assert (sink.delivered, sink.failed) == (1, 0)
    first, second = sink.recent_waits
    assert 0.05 <= first <= 0.075  # initial, plus up to half of it as jitter
    assert 0.1 <= second <= 0.125
    assert second > first
    gaps = [b["at"] - a["at"] for a, b in zip(rec.requests, rec.requests[1:], strict=False)]
    assert gaps[0] >= first * 0.9
    assert gaps[1] >= second * 0.9


def test_429_honours_retry_after_capped_by_backoff_max(server, make_sink):
    rec, url = server
    rec.answer((429, {"Retry-After": "0.1"}), (429, {"Retry-After": "3600"}))
    sink = make_sink(url, backoff_initial=0.001, backoff_max=0.25)
    sink.send(alert())
    assert sink.flush(5)
    assert len(rec.requests) == 3
    assert sink.delivered == 1
    assert list(sink.recent_waits) == [0.1, 0.25]
    assert rec.requests[1]["at"] - rec.requests[0]["at"] >= 0.09


def test_a_4xx_is_not_retried(server, make_sink, caplog):
    rec, url = server
    rec.answer(400)
    sink = make_sink(url)
    with caplog.at_level(logging.ERROR, logger="defiagent"):
        sink.send(alert())
        assert sink.flush(5)
    assert len(rec.requests) == 1
    assert (sink.delivered, sink.failed) == (0, 1)
    assert "HTTP 400" in caplog.text
    assert "not retried" in caplog.text


def test_a_redirect_is_not_followed(server, make_sink):
    rec, url = server
    rec.answer((302, {"Location": "http://127.0.0.1:1/elsewhere"}))
    sink = make_sink(url)
    sink.send(alert())
    assert sink.flush(5)
    assert len(rec.requests) == 1
    assert sink.failed == 1


def test_unreachable_gives_up_after_max_attempts_and_send_stays_fast(make_sink, caplog):
    sink = make_sink(closed_port_url(), max_attempts=3, backoff_initial=0.01, backoff_max=0.02)
    caplog.set_level(logging.DEBUG)
    start = time.perf_counter()
    sink.send(alert())
    assert time.perf_counter() - start < 0.05
    assert sink.flush(5)
    assert (sink.delivered, sink.failed) == (0, 1)
    assert len(sink.recent_waits) == 2  # three attempts, two waits
    assert "gave up" in caplog.text
    assert "ConnectionError" in caplog.text
    assert TOKEN_PATH not in caplog.text
    assert "XXXXsecretTOKENxxxx" not in caplog.text


def test_send_is_fast_while_the_server_hangs(server, make_sink):
    rec, url = server
    rec.gate = threading.Event()
    sink = make_sink(url, timeout=2.0)
    start = time.perf_counter()
    for _ in range(3):
        sink.send(alert())
    assert time.perf_counter() - start < 0.05
    assert rec.wait_for(1)
    assert not sink.flush(0.1)  # still in flight
    rec.gate.set()
    assert sink.flush(5)
    assert sink.delivered == 3


def test_a_full_queue_drops_and_counts(server, make_sink, caplog):
    rec, url = server
    rec.gate = threading.Event()
    sink = make_sink(url, queue_size=1)
    sink.send(alert(title="in flight"))
    assert rec.wait_for(1)  # the worker holds the first one
    with caplog.at_level(logging.WARNING, logger="defiagent"):
        for i in range(4):
            sink.send(alert(title=f"queued {i}"))
    assert sink.dropped == 3
    assert "queue is full" in caplog.text
    rec.gate.set()
    assert sink.flush(5)
    assert (sink.delivered, sink.failed, sink.dropped) == (2, 0, 3)
    assert [b["defiagent"]["title"] for b in rec.bodies()] == ["in flight", "queued 0"]


def test_close_stops_a_retrying_worker_and_counts_the_rest(make_sink):
    sink = make_sink(closed_port_url(), max_attempts=20, backoff_initial=5, backoff_max=5)
    for _ in range(3):
        sink.send(alert())
    start = time.perf_counter()
    sink.close(timeout=0.2)
    assert time.perf_counter() - start < 1.5
    assert sink.failed + sink.dropped == 3
    sink.send(alert())  # after close: dropped, no exception
    assert sink.dropped >= 3


def test_secrets_never_reach_the_server(server, make_sink):
    rec, url = server
    sink = make_sink(url)
    key = "0x" + "4c" * 32
    sink.send(alert(data={"private_key": key, "api_key": "sk-live-123", "note": key, "loss": 1}))
    assert sink.flush(5)
    raw = rec.requests[0]["body"].decode()
    assert "4c4c4c4c" not in raw
    assert "sk-live-123" not in raw
    body = json.loads(raw)
    assert body["defiagent"]["data"]["private_key"] == REDACTED
    assert body["defiagent"]["data"]["loss"] == 1


def test_the_url_path_is_never_logged_or_shown(server, make_sink, caplog):
    rec, url = server
    rec.answer(500, 404)
    caplog.set_level(logging.DEBUG)  # urllib3 logs request paths at DEBUG
    sink = make_sink(url)
    sink.send(alert())
    assert sink.flush(5)
    assert sink.failed == 1
    shown = caplog.text + repr(sink) + str(sink)
    assert "XXXXsecretTOKENxxxx" not in shown
    assert "/services/" not in shown
    assert sink.origin in repr(sink)
    assert "HTTP 404" in caplog.text


def test_bad_urls_are_refused():
    for bad in ("ftp://example.com/x", "hooks.slack.com/services/x", "http:///nohost", ""):
        with pytest.raises(ConfigError) as info:
            WebhookAlertSink(bad)
        assert "services" not in str(info.value)


# --- the log sink -----------------------------------------------------------------------


def test_log_sink_logs_one_line_at_the_severity(caplog):
    with caplog.at_level(logging.INFO, logger="defiagent"):
        LogAlertSink().send(alert(severity=AlertSeverity.CRITICAL, data={"api_key": "sk-1"}))
        LogAlertSink().send(alert(severity=AlertSeverity.INFO))
    assert [r.levelno for r in caplog.records] == [logging.CRITICAL, logging.INFO]
    assert "daily loss limit reached" in caplog.records[0].getMessage()
    assert "sk-1" not in caplog.text


def test_log_sink_keeps_one_line(caplog):
    with caplog.at_level(logging.INFO, logger="defiagent"):
        LogAlertSink().send(alert(title="a\nALERT [info] forged", detail="x\ny"))
    (record,) = caplog.records
    assert "\n" not in record.getMessage()


# --- the dispatcher ---------------------------------------------------------------------


class Collect:
    def __init__(self) -> None:
        self.got: list[Alert] = []

    def send(self, alert: Alert) -> None:
        self.got.append(alert)


class Broken:
    def send(self, alert: Alert) -> None:
        raise RuntimeError("boom")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def audit_records(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_dispatcher_audits_throttles_filters_and_counts(tmp_path):
    path = tmp_path / "audit.jsonl"
    sink, metrics, clock = Collect(), AgentMetrics(), Clock()
    with AuditLog(path) as audit:
        d = AlertDispatcher(
            [Broken(), sink], audit=audit, metrics=metrics, throttle_seconds=60, clock=clock
        )
        d.send(alert())  # delivered (the broken sink does not stop the other one)
        clock.now += 10
        d.send(alert())  # throttled
        d.send(alert())  # throttled
        d.send(alert(title="another title"))  # a different key: delivered
        d.send(alert(severity=AlertSeverity.INFO))  # below the floor: audited only
        clock.now += 60
        d.send(alert(data={"api_key": "sk-9"}))  # window over: delivered, with the count

    assert [a.title for a in sink.got] == [
        "daily loss limit reached",
        "another title",
        "daily loss limit reached",
    ]
    assert sink.got[-1].data["suppressed"] == 2
    assert d.sent == sink.got

    assert verify_audit_log(path).ok
    records = audit_records(path)
    assert [r["kind"] for r in records] == ["alert"] * 6
    payloads = [r["payload"] for r in records]
    assert [p["outcome"] for p in payloads] == [
        "yes",
        "throttled",
        "throttled",
        "yes",
        "below-threshold",
        "yes",
    ]
    assert [p["suppressed"] for p in payloads] == [0, 1, 2, 0, 0, 2]
    assert payloads[0]["kind"] == "limit-breach"
    assert payloads[5]["data"]["api_key"] == REDACTED

    kind = "limit-breach"
    assert metrics.value("defiagent_alerts_total", kind=kind, delivered="yes") == 3
    assert metrics.value("defiagent_alerts_total", kind=kind, delivered="throttled") == 2
    assert metrics.value("defiagent_alerts_total", kind=kind, delivered="below-threshold") == 1


def test_dispatcher_keeps_a_bounded_list_and_survives_a_broken_audit():
    class BadAudit:
        def record(self, kind, payload):
            raise OSError("disk full")

    sink = Collect()
    d = AlertDispatcher([sink], audit=BadAudit(), throttle_seconds=0, keep=5)
    for i in range(8):
        d.send(alert(title=f"t{i}"))
    assert len(sink.got) == 8
    assert [a.title for a in d.sent] == [f"t{i}" for i in range(3, 8)]


def test_dispatcher_flushes_and_closes_the_webhook(server):
    rec, url = server
    webhook = WebhookAlertSink(url, **FAST)
    d = AlertDispatcher([LogAlertSink(), webhook], throttle_seconds=0)
    d.send(alert(severity=AlertSeverity.CRITICAL))
    assert d.flush(5)
    d.close()
    assert webhook.delivered == 1
    assert len(rec.requests) == 1


# --- build_alerts -----------------------------------------------------------------------


def test_build_alerts_without_the_variable_logs_only():
    d = build_alerts(AlertsConfig(), audit=None, metrics=None, environ={})
    assert [type(s) for s in d.sinks] == [LogAlertSink]


def test_build_alerts_with_the_variable_posts(server, tmp_path):
    rec, url = server
    cfg = AlertsConfig(
        webhook_url_env="MY_HOOK",
        backoff_initial_seconds=0.01,
        backoff_max_seconds=0.05,
        min_severity=AlertSeverity.CRITICAL,
    )
    d = build_alerts(cfg, audit=None, metrics=AgentMetrics(), environ={"MY_HOOK": url})
    try:
        assert [type(s) for s in d.sinks] == [LogAlertSink, WebhookAlertSink]
        d.send(alert())  # a warning, below the critical floor
        d.send(alert(severity=AlertSeverity.CRITICAL))
        assert d.flush(5)
    finally:
        d.close()
    assert [b["defiagent"]["severity"] for b in rec.bodies()] == ["critical"]


def test_build_alerts_refuses_a_bad_url_without_echoing_it():
    secret = "hooks.slack.com/services/T1/B1/zzzSECRETzzz"
    with pytest.raises(ConfigError) as info:
        build_alerts(AlertsConfig(), environ={"DEFIAGENT_ALERT_WEBHOOK_URL": secret})
    assert "DEFIAGENT_ALERT_WEBHOOK_URL" in str(info.value)
    assert "zzzSECRETzzz" not in str(info.value)
    assert info.value.exit_code == 2


def test_config_bounds():
    with pytest.raises(ValueError, match="backoff_max_seconds"):
        AlertsConfig(backoff_initial_seconds=5, backoff_max_seconds=1)
    with pytest.raises(ValueError, match="secret reference"):
        AlertsConfig(webhook_url="https://hooks.slack.com/services/x")  # a reference only
    with pytest.raises(ValueError, match="max_attempts"):
        AlertsConfig(max_attempts=0)
