"""[retention]: the audit log's old records pruned behind an authenticated checkpoint; what
is left still verifies, and a checkpoint that was edited, forged or removed does not."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from defiagent.cli.app import main
from defiagent.errors import Refused
from defiagent.monitoring.audit_log import AuditLog, verify_audit_log
from defiagent.privacy.retention import prune_audit_log


def _log(tmp_path, n: int = 6):
    path = tmp_path / "state" / "audit.jsonl"
    with AuditLog(path) as log:
        for i in range(n):
            log.record("tick", {"i": i})
    return path


def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _now_cutting_before(path, seq: int, days: int = 30) -> datetime:
    """A 'now' at which exactly the records before `seq` are older than `days`."""
    ts = datetime.fromisoformat(_records(path)[seq]["ts"])
    return ts + timedelta(days=days)


def test_pruning_keeps_the_rest_verifiable(tmp_path):
    path = _log(tmp_path)
    result = prune_audit_log(path, max_age_days=30, now=_now_cutting_before(path, 4))
    assert (result.pruned, result.kept, result.checkpoint_seq) == (4, 2, 3)
    records = _records(path)
    assert records[0]["kind"] == "audit-checkpoint"
    assert [r["seq"] for r in records[1:]] == [4, 5, 6]  # 6: the audited prune itself
    assert records[-1]["kind"] == "audit-prune"
    report = verify_audit_log(path)
    assert report.ok, report.problem
    assert report.pruned == 4
    assert report.records == 3
    assert main(["audit-log", "verify", str(path)]) == 0
    with AuditLog(path) as log:  # the agent appends on as before
        log.record("tick", {"i": 99})
    assert verify_audit_log(path).ok


def test_nothing_old_enough_prunes_nothing_and_the_newest_record_always_stays(tmp_path):
    path = _log(tmp_path, 3)
    before = path.read_bytes()
    assert prune_audit_log(path, max_age_days=30, now=_now_cutting_before(path, 0)).pruned == 0
    assert path.read_bytes() == before
    far = datetime.fromisoformat(_records(path)[-1]["ts"]) + timedelta(days=999)
    assert prune_audit_log(path, max_age_days=30, now=far).kept == 1
    assert verify_audit_log(path).ok


def test_a_second_prune_extends_the_checkpoint(tmp_path):
    path = _log(tmp_path, 8)
    prune_audit_log(path, max_age_days=1, now=_now_cutting_before(path, 3, days=1))
    seq_6_now = _now_cutting_before(path, [r["seq"] for r in _records(path)].index(6), days=1)
    result = prune_audit_log(path, max_age_days=1, now=seq_6_now)
    assert result.pruned_total == 6
    assert _records(path)[0]["seq"] == 5
    assert verify_audit_log(path).ok


@pytest.mark.parametrize(
    "tamper",
    [
        lambda c: c["payload"].update(pruned_records=c["payload"]["pruned_records"] + 1),
        lambda c: c.update(hash="ab" * 32),
        lambda c: c["payload"].update(pruned_at="2001-01-01T00:00:00+00:00"),
        lambda c: c["payload"].update(mac="00" * 32),
    ],
    ids=["count", "hash", "when", "mac"],
)
def test_a_tampered_checkpoint_is_rejected(tmp_path, tamper):
    path = _log(tmp_path)
    prune_audit_log(path, max_age_days=30, now=_now_cutting_before(path, 4))
    lines = path.read_text().splitlines()
    checkpoint = json.loads(lines[0])
    tamper(checkpoint)
    path.write_text("\n".join([json.dumps(checkpoint), *lines[1:]]) + "\n")
    report = verify_audit_log(path)
    assert not report.ok
    assert report.problem.line == 1
    assert main(["audit-log", "verify", str(path)]) == 1


def test_records_cut_without_the_key_are_caught(tmp_path):
    """An attacker who drops old records and writes their own checkpoint cannot MAC it; one
    who drops the checkpoint, or records after it, breaks the chain."""
    path = _log(tmp_path)
    prune_audit_log(path, max_age_days=30, now=_now_cutting_before(path, 4))
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[1:]) + "\n")  # checkpoint removed
    assert "sequence number 4 where 0" in verify_audit_log(path).problem.reason
    path.write_text("\n".join([lines[0], *lines[2:]]) + "\n")  # a record after it removed
    assert not verify_audit_log(path).ok
    # a checkpoint copied from another log (another head key) does not authenticate
    other = _log(tmp_path / "other")
    prune_audit_log(other, max_age_days=30, now=_now_cutting_before(other, 4))
    foreign = other.read_text().splitlines()[0]
    path.write_text("\n".join([foreign, *lines[1:]]) + "\n")
    assert "does not authenticate" in verify_audit_log(path).problem.reason


def test_an_appender_holding_the_old_file_follows_the_prune(tmp_path):
    path = _log(tmp_path)
    agent = AuditLog(path)  # open before the prune, as a running agent would be
    try:
        prune_audit_log(path, max_age_days=30, now=_now_cutting_before(path, 4))
        agent.record("tick", {"after": "prune"})
    finally:
        agent.close()
    assert _records(path)[-1]["payload"] == {"after": "prune"}
    assert verify_audit_log(path).ok


def test_a_log_that_does_not_verify_is_not_pruned(tmp_path):
    path = _log(tmp_path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], *lines[2:]]) + "\n")
    with pytest.raises(Refused):
        prune_audit_log(path, max_age_days=30, now=_now_cutting_before(path, 3))


def test_prune_cli(tmp_path, capsys):
    path = _log(tmp_path)
    assert main(["audit-log", "prune", str(path), "--older-than-days", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["pruned"] == 0  # all written just now
    assert main(["audit-log", "prune", str(path), "--older-than-days", "0"]) == 2


def test_an_encrypted_log_prunes_and_verifies_without_the_data_key(tmp_path, monkeypatch):
    import keyring
    import keyring.core
    from keyrings.alt.file import PlaintextKeyring

    from defiagent.state_crypto import active
    from defiagent.state_crypto.config import EncryptionConfig

    monkeypatch.setattr(keyring.core, "_keyring_backend", None)
    backend = PlaintextKeyring()
    backend.file_path = str(tmp_path / "keyring.cfg")
    keyring.set_keyring(backend)
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    active.open_state_encryption(state, EncryptionConfig(enabled=True))
    try:
        path = _log(tmp_path)
        assert "sealed" in _records(path)[0]["payload"]
        prune_audit_log(path, max_age_days=30, now=_now_cutting_before(path, 4))
        active.register(state, None)
        keyring.delete_password("defiagent", "state-key")  # no data key from here on
        assert verify_audit_log(path).ok
    finally:
        active.register(state, None)


def test_run_prunes_at_start_per_retention(tmp_path, monkeypatch):
    """[retention] at the agent's start, before anything else is written (here the RPC is
    down, exit 3, after the prune)."""
    import tomli_w

    from defiagent.monitoring import audit_log as audit_module

    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    path = state / "audit.jsonl"
    real = audit_module.datetime

    class TenDaysAgo(real):
        @classmethod
        def now(cls, tz=None):
            return real.now(tz) - timedelta(days=10)

    monkeypatch.setattr(audit_module, "datetime", TenDaysAgo)
    with AuditLog(path) as log:
        for i in range(3):
            log.record("old", {"i": i})
    monkeypatch.setattr(audit_module, "datetime", real)
    with AuditLog(path) as log:
        log.record("recent", {})
    config = tmp_path / "agent.toml"
    config.write_text(
        tomli_w.dumps(
            {
                "rpc_url": "http://127.0.0.1:9",
                "chain_id": 31337,
                "state_dir": str(state),
                "protocols": {"router": "0x" + "11" * 20, "weth": "0x" + "22" * 20},
                "signer": {"backend": "keystore", "path": str(tmp_path / "k.json")},
                "require_backtest": False,
                "retention": {"audit_max_age_days": 7},
            }
        )
    )
    assert main(["run", "-c", str(config), "--ticks", "1"]) == 3  # the RPC, after the prune
    kinds = [r["kind"] for r in _records(path)]
    assert kinds[:3] == ["audit-checkpoint", "recent", "audit-prune"]
    report = verify_audit_log(path)
    assert report.ok
    assert report.pruned == 3
