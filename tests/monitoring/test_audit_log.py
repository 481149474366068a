"""The audit log: every kind of tampering is found and named; nothing secret is written."""

from __future__ import annotations

import json
import threading

import pytest
from eth_account import Account

from defiagent.cli.app import main
from defiagent.errors import InfraError
from defiagent.monitoring.audit_log import GENESIS, AuditLog, verify_audit_log
from defiagent.monitoring.redaction import REDACTED, redact


@pytest.fixture
def log_path(tmp_path):
    path = tmp_path / "audit.jsonl"
    with AuditLog(path) as log:
        for i in range(6):
            log.record("step", {"i": i, "what": f"record {i}"})
    return path


def lines(path):
    return path.read_text().splitlines(keepends=True)


def write(path, new_lines):
    path.write_text("".join(new_lines))


def test_intact_log_verifies(log_path):
    report = verify_audit_log(log_path)
    assert report.ok
    assert report.records == 6
    first = json.loads(lines(log_path)[0])
    assert first["seq"] == 0
    assert first["prev"] == GENESIS


def test_appending_continues_the_chain_across_reopen(log_path):
    with AuditLog(log_path) as log:
        record = log.record("later", {"x": 1})
    assert record["seq"] == 6
    assert verify_audit_log(log_path).ok


def test_an_edit_is_found(log_path):
    content = lines(log_path)
    content[3] = content[3].replace('"record 3"', '"record 33"')
    write(log_path, content)
    report = verify_audit_log(log_path)
    assert not report.ok
    assert report.problem.line == 4
    assert "edited" in report.problem.reason


def test_an_edit_with_a_recomputed_hash_is_found(log_path):
    from defiagent.monitoring.audit_log import record_hash

    content = lines(log_path)
    rec = json.loads(content[2])
    rec["payload"]["what"] = "forged"
    rec["hash"] = record_hash(rec)
    content[2] = json.dumps(rec) + "\n"
    write(log_path, content)
    report = verify_audit_log(log_path)
    assert not report.ok
    assert report.problem.line == 4  # the next record no longer links to it
    assert "link" in report.problem.reason


def test_a_deletion_is_found(log_path):
    content = lines(log_path)
    del content[2]
    write(log_path, content)
    report = verify_audit_log(log_path)
    assert report.problem.line == 3
    assert "missing" in report.problem.reason


def test_an_insertion_is_found(log_path):
    content = lines(log_path)
    content.insert(2, content[1])
    write(log_path, content)
    report = verify_audit_log(log_path)
    assert not report.ok
    assert report.problem.line == 3


def test_reordering_is_found(log_path):
    content = lines(log_path)
    content[1], content[2] = content[2], content[1]
    write(log_path, content)
    report = verify_audit_log(log_path)
    assert report.problem.line == 2


def test_cutting_records_off_the_end_is_found(log_path):
    write(log_path, lines(log_path)[:4])
    report = verify_audit_log(log_path)
    assert not report.ok
    assert "cut off" in report.problem.reason


def test_a_torn_last_line_is_found_and_blocks_appends(log_path):
    content = lines(log_path)
    content[-1] = content[-1][:30]
    write(log_path, content)
    assert "cut off" in verify_audit_log(log_path).problem.reason
    with AuditLog(log_path) as log, pytest.raises(InfraError, match="partial line"):
        log.record("more", {})


def test_no_secret_is_written(tmp_path):
    key = Account.create().key.hex()
    path = tmp_path / "audit.jsonl"
    with AuditLog(path) as log:
        log.record(
            "signer",
            {
                "private_key": key,
                "nested": {"password": "hunter2", "keystore_password": "x", "mnemonic": "a b c"},
                "config": {"api_key": "abc123", "aws_secret_access_key": "zzz"},
                "stray": "0x" + key.removeprefix("0x"),
                "tx_hash": "0x" + "ab" * 32,
                "topics": ["0x" + "cd" * 32],
            },
        )
    text = path.read_text()
    for secret in (key.removeprefix("0x"), "hunter2", "a b c", "abc123", "zzz"):
        assert secret not in text
    assert "ab" * 32 in text  # hashes are not secrets
    assert "cd" * 32 in text
    assert verify_audit_log(path).ok


def test_redaction_rules():
    assert redact({"password": 1}) == {"password": REDACTED}
    assert redact({"token": "0x" + "11" * 20}) == {"token": "0x" + "11" * 20}
    assert redact({"x": ["0x" + "22" * 32]}) == {"x": [REDACTED]}
    assert redact({"codehash": "0x" + "22" * 32})["codehash"].startswith("0x22")


def test_concurrent_writers_keep_one_chain(tmp_path):
    path = tmp_path / "audit.jsonl"
    logs = [AuditLog(path), AuditLog(path)]  # two handles, as two processes would have

    def work(log, n):
        for i in range(40):
            log.record("w", {"writer": n, "i": i})

    threads = [threading.Thread(target=work, args=(log, n)) for n, log in enumerate(logs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for log in logs:
        log.close()
    report = verify_audit_log(path)
    assert report.ok
    assert report.records == 80


def test_verify_cli(log_path, capsys):
    assert main(["audit-log", "verify", str(log_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    content = lines(log_path)
    del content[1]
    write(log_path, content)
    assert main(["audit-log", "verify", str(log_path)]) == 1
    err = capsys.readouterr().err
    assert "line 2" in err
    assert main(["audit-log", "verify", str(log_path), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["problem"]["line"] == 2
    assert doc["error"]["exit_code"] == 1
    assert main(["audit-log", "verify", str(log_path.parent / "nope.jsonl")]) == 2
