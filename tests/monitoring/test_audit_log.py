"""The audit log: every kind of tampering is found and named; nothing secret is written."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
import threading

import pytest
from eth_account import Account

from defiagent.cli.app import main
from defiagent.errors import ConfigError, Refused
from defiagent.monitoring import audit_log as audit_log_module
from defiagent.monitoring.audit_log import (
    GENESIS,
    HEAD_KEY_ENV,
    AuditLog,
    default_head_key_path,
    record_hash,
    verify_audit_log,
)
from defiagent.monitoring.redaction import REDACTED, redact
from defiagent.secrets import SecretUnavailable


@pytest.fixture(autouse=True)
def key_home(tmp_path_factory, monkeypatch):
    """The per-user config dir that holds the head keys: a fresh one, outside every state dir."""
    home = tmp_path_factory.mktemp("xdg-config")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    monkeypatch.delenv(HEAD_KEY_ENV, raising=False)
    return home


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
    with pytest.raises(Refused, match="partial line"):
        AuditLog(log_path)


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


# -- the authenticated head ------------------------------------------------------------------


def head_of(path):
    return json.loads(path.with_name(path.name + ".head").read_text())


def write_head(path, head):
    path.with_name(path.name + ".head").write_text(json.dumps(head))


@pytest.mark.parametrize("n", [1, 3])
def test_deleting_the_last_records_refuses_append_and_fails_verify(log_path, n):
    write(log_path, lines(log_path)[:-n])
    with pytest.raises(Refused, match="cut off") as caught:
        AuditLog(log_path)  # what `defiagent run` does first: it never appends over the gap
    assert "\n" not in str(caught.value)
    report = verify_audit_log(log_path)  # and nothing was re-sealed by the attempt
    assert not report.ok
    assert "cut off" in report.problem.reason
    assert report.records == 6 - n


def test_deleting_the_last_records_stays_found_after_the_agent_tries_to_start(tmp_path):
    """The issue: verify caught the deletion until `run` started, appended and rewrote the
    head; then it reported the chain intact."""
    state = tmp_path / "state"
    with AuditLog(state / "audit.jsonl") as log:
        for i in range(5):
            log.record("step", {"i": i})
    path = state / "audit.jsonl"
    write(path, lines(path)[:2])
    with pytest.raises(Refused), AuditLog(state / "audit.jsonl") as log:  # as AgentRuntime does
        log.record("start", {"mode": "run"})
    assert not verify_audit_log(path).ok
    assert main(["audit-log", "verify", str(path)]) == 1


def test_a_head_forged_without_the_key_refuses(log_path):
    content = lines(log_path)[:4]
    write(log_path, content)
    last = json.loads(content[-1])
    # An attacker with the state dir only: the old head format, recomputed by hand...
    write_head(log_path, {"seq": last["seq"], "hash": last["hash"]})
    with pytest.raises(Refused, match="MAC"):
        AuditLog(log_path)
    assert "MAC" in verify_audit_log(log_path).problem.reason
    # ...or the new one, with a MAC under a key of their own.
    forged = {"v": 1, "seq": last["seq"], "hash": last["hash"], "next": None}
    body = json.dumps(forged, sort_keys=True, separators=(",", ":")).encode()
    forged["mac"] = hmac.new(os.urandom(32), body, hashlib.sha256).hexdigest()
    write_head(log_path, forged)
    with pytest.raises(Refused, match="MAC"):
        AuditLog(log_path)
    report = verify_audit_log(log_path)
    assert not report.ok
    assert not report.head_authenticated


def test_a_missing_head_refuses_when_the_log_has_records(log_path):
    log_path.with_name(log_path.name + ".head").unlink()
    with pytest.raises(Refused, match="head"):
        AuditLog(log_path)
    report = verify_audit_log(log_path)
    assert not report.ok
    assert "missing" in report.problem.reason


def test_a_deleted_log_with_its_head_left_refuses(log_path):
    log_path.unlink()
    with pytest.raises(Refused, match="cut off"):
        AuditLog(log_path)


def test_records_appended_without_the_key_refuse(log_path):
    """A consistent SHA-256 chain is easy to extend; the head says where it ended."""
    content = lines(log_path)
    last = json.loads(content[-1])
    fake = {"seq": 6, "ts": last["ts"], "kind": "kill-switch", "payload": {"on": False}}
    fake["prev"] = last["hash"]
    fake["hash"] = record_hash(fake)
    write(log_path, [*content, json.dumps(fake) + "\n"])
    with pytest.raises(Refused, match="not covered"):
        AuditLog(log_path)
    report = verify_audit_log(log_path)
    assert not report.ok
    assert report.problem.line == 7


def test_a_fresh_log_works(tmp_path):
    path = tmp_path / "state" / "audit.jsonl"
    with AuditLog(path) as log:
        assert log.record("first", {})["seq"] == 0
    report = verify_audit_log(path)
    assert report.ok
    assert report.head_authenticated
    assert report.head_seq == 0
    assert set(head_of(path)) >= {"seq", "hash", "mac"}
    assert verify_audit_log(path).records == 1


def test_an_empty_log_without_a_head_is_new_and_verifies(tmp_path):
    path = tmp_path / "audit.jsonl"
    AuditLog(path).close()
    assert verify_audit_log(path).ok


def test_a_crash_between_the_append_and_the_head_update_is_tolerated(tmp_path, monkeypatch):
    path = tmp_path / "audit.jsonl"
    with AuditLog(path) as log:
        log.record("a", {})
        calls = []
        real = AuditLog._write_head

        def crash_on_the_second(self, *args, **kwargs):
            calls.append(args)
            if len(calls) == 2:  # the record is on disk, its head is not
                raise RuntimeError("power cut")
            return real(self, *args, **kwargs)

        with monkeypatch.context() as patched:
            patched.setattr(AuditLog, "_write_head", crash_on_the_second)
            with pytest.raises(RuntimeError):
                log.record("b", {})
    assert verify_audit_log(path).ok
    assert verify_audit_log(path).records == 2
    with AuditLog(path) as log:
        assert log.record("c", {})["seq"] == 2
    assert verify_audit_log(path).ok


def test_the_key_file_is_private_and_outside_the_state_dir(tmp_path, key_home):
    state = tmp_path / "state"
    path = state / "audit.jsonl"
    key_file = default_head_key_path(path)
    assert not key_file.exists()
    AuditLog(path).close()
    assert key_file.is_file()
    assert key_file.is_relative_to(key_home / "defiagent")
    assert not key_file.resolve().is_relative_to(state.resolve())
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    assert len(key_file.read_bytes()) == 32
    assert key_file.read_bytes() not in b"".join(p.read_bytes() for p in state.iterdir())
    assert hashlib.sha256(str(state.resolve()).encode()).hexdigest()[:16] in key_file.name


def test_two_state_dirs_get_different_keys(tmp_path):
    a, b = tmp_path / "a" / "audit.jsonl", tmp_path / "b" / "audit.jsonl"
    for path in (a, b):
        with AuditLog(path) as log:
            log.record("x", {})
    assert default_head_key_path(a) != default_head_key_path(b)
    assert default_head_key_path(a).read_bytes() != default_head_key_path(b).read_bytes()
    # One agent's head does not authenticate another's log, even with the same records.
    (tmp_path / "b" / "audit.jsonl").write_bytes(a.read_bytes())
    (tmp_path / "b" / "audit.jsonl.head").write_bytes(
        (tmp_path / "a" / "audit.jsonl.head").read_bytes()
    )
    with pytest.raises(Refused, match="MAC"):
        AuditLog(b)


def test_a_key_file_open_to_others_is_refused(log_path):
    key_file = default_head_key_path(log_path)
    key_file.chmod(0o644)
    with pytest.raises(Refused, match="chmod 600"):
        AuditLog(log_path)


def test_a_missing_key_file_is_named_and_not_replaced(log_path):
    key_file = default_head_key_path(log_path)
    key_file.unlink()
    with pytest.raises(Refused, match="key"):
        AuditLog(log_path)
    assert not key_file.exists()  # a new key would only hide the problem
    assert not verify_audit_log(log_path).ok


def test_the_head_key_may_come_from_the_environment(tmp_path, monkeypatch):
    path = tmp_path / "audit.jsonl"
    monkeypatch.setenv("AUDIT_SECRET", "s" * 40)
    with AuditLog(path, head_key="env:AUDIT_SECRET") as log:
        log.record("x", {})
    assert not default_head_key_path(path).exists()
    assert verify_audit_log(path, head_key="env:AUDIT_SECRET").ok
    assert not verify_audit_log(path).ok  # another key: the head does not authenticate
    monkeypatch.setenv(HEAD_KEY_ENV, "env:AUDIT_SECRET")  # the default reference
    assert verify_audit_log(path).ok
    with AuditLog(path) as log:
        log.record("y", {})
    monkeypatch.setenv("AUDIT_SECRET", "t" * 40)
    with pytest.raises(Refused, match="MAC"):
        AuditLog(path)
    monkeypatch.delenv("AUDIT_SECRET")
    with pytest.raises(SecretUnavailable, match="AUDIT_SECRET"):  # a missing secret: exit 3
        AuditLog(path)
    monkeypatch.setenv("AUDIT_SECRET", "short")
    with pytest.raises(ConfigError, match="32"):
        AuditLog(path)


def test_a_key_dir_inside_the_state_dir_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "state" / "cfg"))
    with pytest.raises(ConfigError, match="outside"):
        AuditLog(tmp_path / "state" / "audit.jsonl")


# -- repair: a torn last line only -----------------------------------------------------------


def torn_append(path, keep=40):
    """Append a record the way a crash mid-write leaves it: the head updated, the line cut."""
    written = {}

    def partial(self, data):
        os.write(self._fd, data[:keep])
        written["bytes"] = data[:keep]
        raise RuntimeError("power cut")

    with AuditLog(path) as log:
        original = AuditLog._write_line
        AuditLog._write_line = partial
        try:
            with pytest.raises(RuntimeError):
                log.record("lost", {"secret-ish": "content of the torn line"})
        finally:
            AuditLog._write_line = original
    return written["bytes"]


def test_repair_of_a_torn_line_removes_it_and_records_what_it_removed(log_path, capsys):
    torn = torn_append(log_path)
    report = verify_audit_log(log_path)
    assert not report.ok
    assert report.repairable
    assert report.problem.line == 7
    with pytest.raises(Refused, match="repair"):
        AuditLog(log_path)

    assert main(["audit-log", "repair", str(log_path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is True
    assert doc["removed_bytes"] == len(torn)
    assert doc["removed_sha256"] == hashlib.sha256(torn).hexdigest()

    assert verify_audit_log(log_path).ok
    last = json.loads(lines(log_path)[-1])
    assert last["seq"] == 6
    assert last["kind"] == "audit-repair"
    assert last["payload"]["removed_bytes"] == len(torn)
    assert last["payload"]["removed_sha256"] == hashlib.sha256(torn).hexdigest()
    assert last["payload"]["line"] == 7
    assert torn.decode() not in json.dumps(last)  # what was removed is named, never copied
    with AuditLog(log_path) as log:
        assert log.record("after", {})["seq"] == 7
    assert verify_audit_log(log_path).ok


def test_repair_of_a_torn_first_line(tmp_path):
    path = tmp_path / "audit.jsonl"
    torn_append(path, keep=10)
    assert verify_audit_log(path).repairable
    assert main(["audit-log", "repair", str(path)]) == 0
    assert verify_audit_log(path).ok
    assert json.loads(lines(path)[0])["kind"] == "audit-repair"


def test_repair_refuses_a_deleted_record(log_path, capsys):
    content = lines(log_path)
    write(log_path, content[:-1])
    before = log_path.read_bytes(), head_of(log_path)
    assert main(["audit-log", "repair", str(log_path)]) == 1
    err = capsys.readouterr().err
    assert "not repairable" in err
    assert "Traceback" not in err
    assert (log_path.read_bytes(), head_of(log_path)) == before
    # a record cut mid-line after it was complete (the head names it) is a deletion too
    write(log_path, [*content[:-1], content[-1][:30]])
    assert not verify_audit_log(log_path).repairable
    assert main(["audit-log", "repair", str(log_path), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False
    assert doc["error"]["exit_code"] == 1


def test_repair_refuses_an_edit_and_leaves_an_intact_log_alone(log_path, capsys):
    content = lines(log_path)
    intact = log_path.read_bytes()
    assert main(["audit-log", "repair", str(log_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["repaired"] is False
    assert log_path.read_bytes() == intact
    content[2] = content[2].replace('"record 2"', '"record 22"')
    write(log_path, [*content, '{"seq": 6'])
    assert main(["audit-log", "repair", str(log_path)]) == 1
    assert "not repairable" in capsys.readouterr().err


# -- the refusal, as a person sees it ----------------------------------------------------------


def test_verify_cli_names_records_cut_off_the_end(log_path, capsys):
    write(log_path, lines(log_path)[:3])
    assert main(["audit-log", "verify", str(log_path)]) == 1
    err = capsys.readouterr().err
    assert "cut off" in err
    assert "Traceback" not in err
    assert main(["audit-log", "verify", str(log_path), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False
    assert doc["head_authenticated"] is True


def test_run_refuses_in_one_sentence_when_the_log_lost_records(tmp_path, capsys):
    state = tmp_path / "state"
    with AuditLog(state / "audit.jsonl") as log:
        for i in range(3):
            log.record("step", {"i": i})
    path = state / "audit.jsonl"
    write(path, lines(path)[:1])
    config = tmp_path / "agent.toml"
    config.write_text(
        f"""
rpc_url = "http://127.0.0.1:9"
chain_id = 1
state_dir = "{state}"
[protocols]
router = "0x7a250d5630B4cF539739dF2C5dAcb4c659F2488D"
weth = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
factory = "0x5C69bEe701ef814a2B6a3EDD4B1652CB9cc5aA6f"
[signer]
backend = "ledger"
"""
    )
    assert main(["run", "--config", str(config), "--ticks", "1"]) == 1
    err = capsys.readouterr().err.strip()
    assert "cut off" in err
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1
    assert not verify_audit_log(path).ok


def test_head_writes_are_atomic_and_private(log_path):
    head = log_path.with_name(log_path.name + ".head")
    assert stat.S_IMODE(head.stat().st_mode) == 0o600
    assert not list(log_path.parent.glob("*.tmp"))
    assert audit_log_module.HEAD_KEY_ENV == "DEFIAGENT_AUDIT_HEAD_KEY"


def _write_from_another_process(path, n):
    with AuditLog(path) as log:
        for i in range(20):
            log.record("w", {"writer": n, "i": i})


def test_processes_opening_a_new_log_at_once_share_one_key_and_chain(tmp_path):
    import multiprocessing

    path = tmp_path / "state" / "audit.jsonl"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_write_from_another_process, args=(path, n)) for n in (1, 2)]
    for w in workers:
        w.start()
    _write_from_another_process(path, 0)
    for w in workers:
        w.join(60)
        assert w.exitcode == 0
    report = verify_audit_log(path)
    assert report.ok, report.problem
    assert report.records == 60


def test_urls_in_any_string_are_cut_to_their_host():
    """An RPC error quoting the whole URL (its API key in the path or query) is recorded
    with the host only; URLs without anything to hide are kept whole."""
    reason = (
        "reading the latest block failed: HTTPSConnectionPool(host='rpc.example', port=443): "
        "Max retries exceeded with url: https://rpc.example/v3/abc123SECRET?apikey=abc123SECRET"
    )
    cut = redact({"reason": reason, "endpoint": "http://127.0.0.1:8545"})
    assert "abc123SECRET" not in json.dumps(cut)
    assert "https://rpc.example/…" in cut["reason"]
    assert cut["endpoint"] == "http://127.0.0.1:8545"
    user = redact({"error": "failed: https://user:pw@host.example:8443/rpc"})
    assert user == {"error": "failed: https://host.example:8443/…"}
