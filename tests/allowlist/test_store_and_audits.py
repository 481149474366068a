"""TOML entries, policy and reviewers files, audit judgement: pure, no chain."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from defiagent.allowlist.models import AuditFinding, Severity
from defiagent.allowlist.policy import AuditPolicy, Policy, load_policy
from defiagent.allowlist.reviewers import load_reviewers
from defiagent.allowlist.signatures import entry_hash
from defiagent.allowlist.tomlio import read_entry, write_entry
from defiagent.errors import ConfigError, Refused
from defiagent.vetting.audits import CodeTarget, judge
from tests.allowlist.rich_entry import IMPL_HASH, PROXY_HASH, rich_entry
from tests.allowlist.support import make_audit

TODAY = date(2026, 11, 25)


def test_entry_round_trips_through_toml_with_big_ints_and_no_nulls(tmp_path, keys):
    entry = rich_entry(keys)
    path = tmp_path / "31337" / f"{entry.address}.toml"
    write_entry(path, entry)
    text = path.read_text()
    assert "null" not in text
    assert "None" not in text
    assert (
        f'value = "{10**30}"' in text
    )  # > 2^63: a string in TOML, an int-able string in the model
    again = read_entry(path)
    assert again == entry
    assert entry_hash(again) == entry_hash(entry)


def test_formatting_and_comments_do_not_change_the_signed_hash(tmp_path, keys):
    entry = rich_entry(keys)
    path = tmp_path / "e.toml"
    write_entry(path, entry)
    path.write_text("# a reviewer's comment\n\n" + path.read_text().replace(" = ", "   =   "))
    assert entry_hash(read_entry(path)) == entry_hash(entry)


def test_unknown_field_is_a_schema_error(tmp_path, keys):
    path = tmp_path / "e.toml"
    write_entry(path, rich_entry(keys))
    path.write_text(path.read_text().replace('notes = "', 'trusted = true\nnotes = "'))
    with pytest.raises(ConfigError, match="trusted"):
        read_entry(path)


def test_reviewers_file_rules(tmp_path, keys):
    (tmp_path / "reviewers.toml").write_text(
        f'threshold = 3\n[[reviewers]]\nname = "a"\naddress = "{keys.reviewers[0].address}"\n'
    )
    with pytest.raises(ConfigError, match="threshold 3"):
        load_reviewers(tmp_path)
    (tmp_path / "reviewers.toml").chmod(0o666)
    with pytest.raises(Refused, match="world-writable"):
        load_reviewers(tmp_path)


def test_missing_policy_means_strict_defaults_and_bad_levels_are_rejected(tmp_path):
    policy = load_policy(tmp_path)
    assert policy.audits.min_audits == 1
    assert policy.audits.trusted_auditors == []
    assert policy.slither.fails("High", "Medium")
    assert not policy.slither.fails("Low", "High")
    (tmp_path / "policy.toml").write_text('[slither]\nfail_impacts = ["Severe"]\n')
    with pytest.raises(ConfigError, match="Severe"):
        load_policy(tmp_path)


@pytest.fixture
def policy(keys) -> AuditPolicy:
    return Policy.model_validate(
        {
            "audits": {
                "trusted_auditors": [{"name": "T", "address": keys.auditor.address}],
                "require_auditor_signature": True,
            }
        }
    ).audits


def _target(codehash=PROXY_HASH, address=None):
    return CodeTarget(label="contract", chain_id=1, address=address, codehash=codehash)


def test_a_valid_audit_counts(keys, policy):
    v = judge(
        make_audit(keys.auditor, [PROXY_HASH], issued_at=TODAY), _target(), policy, today=TODAY
    )
    assert v.counts
    assert not v.blocking


def test_audit_of_other_bytecode_does_not_count(keys, policy):
    v = judge(
        make_audit(keys.auditor, [IMPL_HASH], issued_at=TODAY), _target(), policy, today=TODAY
    )
    assert not v.counts
    assert "does not cover the deployed contract code" in v.reasons[0]


def test_audit_bound_to_another_deployment_does_not_count(keys, policy):
    record = make_audit(
        keys.auditor, [PROXY_HASH], chain_id=1, address=keys.outsider.address, issued_at=TODAY
    )
    assert not judge(record, _target(address=keys.reviewers[0].address), policy, today=TODAY).counts
    assert judge(record, _target(address=keys.outsider.address), policy, today=TODAY).counts


def test_untrusted_auditor_stale_or_future_audit(keys, policy):
    untrusted = make_audit(keys.outsider, [PROXY_HASH], issued_at=TODAY)
    assert "not trusted" in judge(untrusted, _target(), policy, today=TODAY).reasons[0]
    old = make_audit(keys.auditor, [PROXY_HASH], issued_at=TODAY - timedelta(days=731))
    assert "731 days old" in judge(old, _target(), policy, today=TODAY).reasons[0]
    future = make_audit(keys.auditor, [PROXY_HASH], issued_at=TODAY + timedelta(days=1))
    assert "future" in judge(future, _target(), policy, today=TODAY).reasons[0]


def test_auditor_signature_is_checked_and_can_be_required(keys, policy):
    record = make_audit(keys.auditor, [PROXY_HASH], issued_at=TODAY)
    forged = record.model_copy(update={"report_uri": "https://elsewhere.invalid/clean.pdf"})
    assert "signature does not match" in judge(forged, _target(), policy, today=TODAY).reasons[0]
    unsigned = make_audit(keys.auditor, [PROXY_HASH], issued_at=TODAY, sign=False)
    assert "not signed" in judge(unsigned, _target(), policy, today=TODAY).reasons[0]
    lax = policy.model_copy(update={"require_auditor_signature": False})
    assert judge(unsigned, _target(), lax, today=TODAY).counts


def test_unresolved_findings_of_failing_severity_block(keys, policy):
    findings = (
        AuditFinding(id="H-1", severity=Severity.HIGH, title="drain", status="acknowledged"),
        AuditFinding(id="C-1", severity=Severity.CRITICAL, title="mint", status="fixed"),
        AuditFinding(id="M-1", severity=Severity.MEDIUM, title="dos", status="open"),
    )
    v = judge(
        make_audit(keys.auditor, [PROXY_HASH], findings=findings, issued_at=TODAY),
        _target(),
        policy,
        today=TODAY,
    )
    assert v.counts
    assert v.blocking == ["high finding H-1 'drain' is acknowledged"]


def test_report_file_hash_is_checked_when_at_hand(keys, policy, tmp_path):
    import hashlib

    (tmp_path / "report.pdf").write_bytes(b"the report")
    record = make_audit(keys.auditor, [PROXY_HASH], issued_at=TODAY, sign=False).model_copy(
        update={
            "report_uri": "report.pdf",
            "report_sha256": hashlib.sha256(b"the report").hexdigest(),
        }
    )
    lax = policy.model_copy(update={"require_auditor_signature": False})
    assert judge(record, _target(), lax, today=TODAY, report_base=tmp_path).counts
    (tmp_path / "report.pdf").write_bytes(b"another report")
    v = judge(record, _target(), lax, today=TODAY, report_base=tmp_path)
    assert "sha256" in v.reasons[0]
