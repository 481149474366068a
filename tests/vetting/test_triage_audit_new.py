"""`defiagent allowlist audit new`: an audit record file an auditor signs and the policy
accepts, from the command line alone; bad input is refused with one sentence."""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime

import pytest
from eth_account import Account

from defiagent.allowlist.policy import AuditPolicy, TrustedAuditor
from defiagent.cli.app import main
from defiagent.signing.keystore import write_keystore
from defiagent.vetting.audits import CodeTarget, judge, load_audit

PASSWORD_ENV = "DEFIAGENT_TEST_AUDIT_PASSWORD"
CODEHASH = "0x" + "ab" * 32


def _run(capsys, *argv):
    code = main([*argv])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip().startswith("{") else None


@pytest.fixture
def auditor(tmp_path, monkeypatch):
    account = Account.create()
    monkeypatch.setenv(PASSWORD_ENV, Account.create().key.hex())  # throwaway password
    store = tmp_path / "auditor.json"
    write_keystore(store, bytes(account.key), os.environ[PASSWORD_ENV], light=True)
    report = tmp_path / "report.pdf"
    report.write_bytes(b"%PDF-1.7 the audit report")
    return account, store, report


def _new(capsys, out, account, report, *extra):
    return _run(
        capsys,
        "allowlist", "audit", "new", str(out),
        "--auditor-name", "Throwaway Audits", "--auditor-address", account.address,
        "--report-uri", "report.pdf", "--report", str(report),
        "--codehash", CODEHASH, *extra, "--json",
    )  # fmt: skip


def test_a_new_record_is_signed_by_the_auditor_and_counts(capsys, tmp_path, auditor):
    account, store, report = auditor
    out = tmp_path / "audit.toml"
    code, data = _new(capsys, out, account, report, "--finding", "H-01:high:fixed:Reentrancy")
    assert code == 0, data
    record = load_audit(out)
    assert record.report_sha256 == hashlib.sha256(report.read_bytes()).hexdigest()
    assert [c.runtime_codehash for c in record.contracts] == [CODEHASH]
    assert record.findings[0].status == "fixed"
    assert record.signature is None
    code, data = _run(
        capsys, "allowlist", "sign-audit", str(out), "--key", str(store),
        "--password-env", PASSWORD_ENV, "--json",
    )  # fmt: skip
    assert code == 0, data
    policy = AuditPolicy(
        trusted_auditors=[TrustedAuditor(name="Throwaway Audits", address=account.address)],
        require_auditor_signature=True,
    )
    verdict = judge(
        load_audit(out),
        CodeTarget(label="contract", chain_id=1, address=None, codehash=CODEHASH),
        policy,
        today=datetime.now(UTC).date(),
        report_base=tmp_path,
    )
    assert verdict.counts, verdict.reasons
    assert not verdict.blocking


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--finding", "H-01:severe:open:x"], "severity 'severe'"),
        (["--finding", "H-01:high"], "ID:SEVERITY:STATUS:TITLE"),
        (["--codehash", "0x1234"], "not valid"),
        (["--chain-id", "1"], "go together"),
        (["--issued-at", "yesterday"], "not a date"),
        (["--report-sha256", "ab" * 32], "not both"),
    ],
)
def test_bad_input_is_refused_in_one_sentence(capsys, tmp_path, auditor, extra, message):
    account, _store, report = auditor
    out = tmp_path / "audit.toml"
    code, data = _new(capsys, out, account, report, *extra)
    assert code == 2
    assert message in data["error"]["message"]
    assert not out.exists()


def test_an_existing_record_is_not_overwritten_without_force(capsys, tmp_path, auditor):
    account, _store, report = auditor
    out = tmp_path / "audit.toml"
    out.write_text("# someone's record\n")
    code, data = _new(capsys, out, account, report)
    assert code == 2
    assert "--force" in data["error"]["message"]
    assert out.read_text() == "# someone's record\n"
    code, _ = _new(capsys, out, account, report, "--force")
    assert code == 0
    assert load_audit(out).auditor.address == account.address
