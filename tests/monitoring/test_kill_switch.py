"""The kill switch persists across restarts, fails closed, and is driven from the CLI."""

from __future__ import annotations

import json

from defiagent.cli.app import main
from defiagent.monitoring.audit_log import AuditLog, verify_audit_log
from defiagent.monitoring.kill_switch import FILENAME, KillSwitch


def test_off_until_switched_on_and_persistent(tmp_path):
    assert not KillSwitch(tmp_path).is_on()
    KillSwitch(tmp_path).set(True, reason="oracle looks wrong")
    again = KillSwitch(tmp_path)  # a new process would build a new object
    assert again.is_on()
    assert again.status().reason == "oracle looks wrong"
    again.set(False)
    assert not KillSwitch(tmp_path).is_on()
    assert [p.name for p in tmp_path.iterdir()] == [FILENAME]  # no temp file left behind


def test_unreadable_state_counts_as_on(tmp_path):
    (tmp_path / FILENAME).write_text("{not json")
    status = KillSwitch(tmp_path).status()
    assert status.on
    assert not status.readable
    (tmp_path / FILENAME).write_text(json.dumps({"on": "no"}))
    assert KillSwitch(tmp_path).is_on()


def test_changes_are_audited(tmp_path):
    with AuditLog(tmp_path / "audit.jsonl") as audit:
        KillSwitch(tmp_path, audit=audit).set(True, reason="r", changed_by="test")
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert records[0]["kind"] == "kill-switch"
    assert records[0]["payload"]["on"] is True
    assert verify_audit_log(tmp_path / "audit.jsonl").ok


def test_cli_on_off_status(tmp_path, capsys):
    state = str(tmp_path / "state")
    assert main(["kill-switch", "status", "--state-dir", state, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["on"] is False
    assert main(["kill-switch", "on", "--reason", "drill", "--state-dir", state, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["on"] is True
    assert doc["reason"] == "drill"
    assert main(["kill-switch", "status", "--state-dir", state]) == 0
    assert "ON" in capsys.readouterr().out
    assert KillSwitch(tmp_path / "state").is_on()
    assert main(["kill-switch", "off", "--state-dir", state]) == 0
    assert not KillSwitch(tmp_path / "state").is_on()
    assert verify_audit_log(tmp_path / "state" / "audit.jsonl").records == 2


def test_cli_reads_the_state_dir_from_the_config(tmp_path, capsys):
    config = tmp_path / "agent.toml"
    config.write_text(
        'rpc_url = "http://127.0.0.1:1"\nchain_id = 1\nstate_dir = "st"\n'
        "[protocols]\n"
        'router = "0x7a250d5630B4cF539739dF2C5dAcb4c659F2488D"\n'
        'weth = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"\n'
        '[signer]\nbackend = "ledger"\n'
    )
    assert main(["kill-switch", "on", "--config", str(config)]) == 0
    assert KillSwitch(tmp_path / "st").is_on()
    config.write_text("chain_id = 'x'\n")
    assert main(["kill-switch", "status", "--config", str(config)]) == 2
    assert "config field rpc_url" in capsys.readouterr().err


def test_the_switch_goes_on_even_when_the_audit_log_was_tampered_with(tmp_path, capsys):
    state = tmp_path / "state"
    assert main(["kill-switch", "on", "--reason", "one", "--state-dir", str(state)]) == 0
    assert main(["kill-switch", "off", "--state-dir", str(state)]) == 0
    log = state / "audit.jsonl"
    log.write_text(log.read_text().splitlines(keepends=True)[0])  # the last record deleted
    capsys.readouterr()
    # Stopping must stay possible: the switch is set, and the command says it is unrecorded.
    assert main(["kill-switch", "on", "--reason", "two", "--state-dir", str(state)]) == 1
    assert KillSwitch(state).is_on()
    err = capsys.readouterr().err
    assert "the kill switch is ON, but it could not be recorded" in err
    assert "Traceback" not in err
    # Turning it off is refused while the log does not verify.
    assert main(["kill-switch", "off", "--state-dir", str(state)]) == 1
    assert KillSwitch(state).is_on()
