"""The flood trigger of the automatic kill switch: both sides of the threshold, the window."""

from __future__ import annotations

import json

from defiagent.monitoring.audit_log import AuditLog
from defiagent.monitoring.auto_kill import AutoKill, AutoKillConfig
from defiagent.monitoring.interfaces import Alert
from defiagent.monitoring.kill_switch import KillSwitch


class Inbox:
    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def send(self, alert: Alert) -> None:
        self.alerts.append(alert)

    def flush(self, timeout: float = 0) -> None:
        pass

    def close(self) -> None:
        pass


def auto_kill(tmp_path, **config):
    audit = AuditLog(tmp_path / "audit.jsonl")
    inbox = Inbox()
    switch = KillSwitch(tmp_path, audit=audit)
    kill = AutoKill(
        switch,
        AutoKillConfig(flood_threshold=10, flood_window_seconds=60, **config),
        audit=audit,
        alerts=inbox,
    )
    return kill, switch, inbox, audit


def test_one_under_the_threshold_does_not_trip_the_threshold_does(tmp_path):
    kill, switch, inbox, audit = auto_kill(tmp_path)
    assert not kill.flooded("rogue", 9, now=1000.0)
    assert not switch.is_on()
    assert kill.flooded("rogue", 1, now=1001.0)
    assert switch.is_on()
    assert "flood" in switch.status().reason
    (alert,) = inbox.alerts
    assert alert.title == "kill switch tripped automatically: flood"
    assert "10 intents rate-limited or dropped in 60 s (limit 10), from rogue" in alert.detail
    audit.close()
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert any(r["kind"] == "auto-kill" and r["payload"]["trigger"] == "flood" for r in records)


def test_refusals_older_than_the_window_do_not_count(tmp_path):
    kill, switch, _, _ = auto_kill(tmp_path)
    assert not kill.flooded("a", 9, now=1000.0)
    assert not kill.flooded("b", 9, now=1060.0)  # the first 9 are exactly one window old
    assert not switch.is_on()
    assert kill.flooded("a", 1, now=1061.0)  # 9 + 1 within 60 s
    assert "from a, b" in switch.status().reason


def test_off_means_off(tmp_path):
    kill, switch, _, _ = auto_kill(tmp_path, on_flood=False)
    assert not kill.flooded("rogue", 10_000, now=1.0)
    assert not switch.is_on()
