"""`defiagent privacy export|erase`: a reviewer's and the operator's personal data, exported
whole, erased on request (audited), with every signature and the audit log still verifying.
Unknown subjects are refused; nothing is erased without --yes."""

from __future__ import annotations

import json

import pytest
import tomli_w

from defiagent.allowlist.reviewers import load_reviewers, reviewers_sha256
from defiagent.allowlist.store import load_active_allowlist
from defiagent.cli.app import main
from defiagent.errors import Refused
from defiagent.monitoring.audit_log import AuditLog, verify_audit_log
from defiagent.operator.enrolment import EnrolmentStore, new_enrolment
from defiagent.privacy.subjects import PERSONAL_FILE, Subjects, load_personal
from tests.allowlist.support import Keys, approved_entry, make_root

CHAIN = 31337
CONTRACT = "0x" + "12" * 20
CODEHASH = "0x" + "34" * 32


@pytest.fixture
def world(tmp_path):
    """An allowlist root (2-of-3 reviewers, names inline as older files have them, one
    reviewer's name and contact in the personal file) with an approved entry, and a state
    dir with an operator enrolment and an audit log."""
    keys = Keys()
    root = make_root(tmp_path / "allowlist", keys)
    approved_entry(root, keys, chain_id=CHAIN, address=CONTRACT, codehash=CODEHASH)
    (root / PERSONAL_FILE).write_text(
        tomli_w.dumps(
            {
                "reviewers": [
                    {
                        "address": keys.reviewers[1].address,
                        "name": "Bob Reviewer",
                        "contact": "bob@example.org",
                    }
                ]
            }
        )
    )
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    EnrolmentStore(state).save(new_enrolment("alice@ops.example"))
    with AuditLog(state / "audit.jsonl") as audit:
        audit.record("approval-seen", {"reviewer": keys.reviewers[1].address})
        audit.record("operator", {"name": "alice@ops.example"})
    return keys, root, state


def _args(root, state):
    return ["--allowlist", str(root), "--state-dir", str(state)]


def test_export_a_reviewer(world, capsys):
    keys, root, state = world
    bob = keys.reviewers[1].address
    assert main(["privacy", "export", "--subject", bob.lower(), *_args(root, state), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["kind"] == "reviewer"
    assert doc["personal"] == {"name": "Bob Reviewer", "contact": "bob@example.org"}
    assert doc["kept_for_verification"] == {"address": bob}
    assert doc["signatures"][0]["entry"] == f"{CHAIN}/{CONTRACT}"
    assert [r["seq"] for r in doc["audit_records"]] == [0]
    # by name too
    assert Subjects(root, state).export("bob reviewer").kept_for_verification["address"] == bob


def test_export_the_operator_without_the_totp_secret(world, capsys):
    _, root, state = world
    secret = EnrolmentStore(state).load().secret
    assert main(["privacy", "export", "--subject", "alice@ops.example", *_args(root, state)]) == 0
    out = capsys.readouterr().out
    assert "alice@ops.example" in out
    assert secret not in out
    doc = Subjects(root, state).export("alice@ops.example")
    assert doc.kind == "operator"
    assert [r["kind"] for r in doc.audit_records] == ["operator"]


def test_erase_a_reviewer_keeps_signatures_and_the_log_verifiable(world, capsys):
    keys, root, state = world
    bob = keys.reviewers[1].address
    assert main(["privacy", "erase", "--subject", bob, *_args(root, state)]) == 1  # no --yes
    assert load_personal(root).reviewers  # nothing erased yet
    pin_before = reviewers_sha256(root)
    assert main(["privacy", "erase", "--subject", bob, *_args(root, state), "--yes", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["erased_fields"] == ["contact", "name"]
    assert load_personal(root).reviewers == []
    assert "Bob Reviewer" not in (root / PERSONAL_FILE).read_text()
    # the older inline name was taken out of reviewers.toml: its pin changed, and is reported
    assert result["reviewers_sha256"] == reviewers_sha256(root) != pin_before
    assert load_reviewers(root).get(bob).name is None
    # every approval still verifies, under the new pin
    active = load_active_allowlist(root, CHAIN, reviewers_sha256=result["reviewers_sha256"])
    assert CONTRACT.lower() in {a.lower() for a in active.entries}
    # the erase is audited without naming the subject, and the log verifies
    last = json.loads((state / "audit.jsonl").read_text().splitlines()[-1])
    assert last["kind"] == "privacy-erase"
    assert bob.lower() not in json.dumps(last).lower()
    assert "Bob Reviewer" not in json.dumps(last)
    assert verify_audit_log(state / "audit.jsonl").ok
    # a second erase: nothing personal is left beyond the address
    with pytest.raises(Refused, match="nothing to erase"):
        Subjects(root, state).erase(bob)


def test_erase_a_reviewer_held_only_in_the_personal_file_leaves_the_pin(world):
    keys, root, state = world
    bob = keys.reviewers[1].address
    raw = (root / "reviewers.toml").read_text()
    (root / "reviewers.toml").write_text(  # the new format: no names in the pinned file
        tomli_w.dumps(
            {"threshold": 2, "reviewers": [{"address": k.address} for k in keys.reviewers]}
        )
    )
    assert raw != (root / "reviewers.toml").read_text()
    pin = reviewers_sha256(root)
    result = Subjects(root, state).erase(bob)
    assert result.reviewers_sha256 is None
    assert reviewers_sha256(root) == pin
    load_active_allowlist(root, CHAIN, reviewers_sha256=pin)


def test_erase_the_operator_keeps_the_second_factor(world):
    _, root, state = world
    before = EnrolmentStore(state).load()
    Subjects(root, state).erase("alice@ops.example")
    after = EnrolmentStore(state).load()
    assert after.name == "erased"
    assert after.secret == before.secret
    assert after.totp().now() == before.totp().now()
    assert verify_audit_log(state / "audit.jsonl").ok
    with pytest.raises(Refused, match="no reviewer or operator"):
        Subjects(root, state).export("alice@ops.example")


def test_unknown_subjects_are_refused(world, capsys):
    _, root, state = world
    for subject in ("0x" + "99" * 20, "mallory", "erased"):
        assert main(["privacy", "erase", "--subject", subject, *_args(root, state), "--yes"]) == 1
        assert "no reviewer or operator is known" in capsys.readouterr().err
    assert main(["privacy", "export", "--subject", "x"]) == 2  # nowhere to look


def test_an_erase_with_nowhere_to_record_it_is_refused(world, capsys):
    keys, root, _ = world
    bob = keys.reviewers[1].address
    assert main(["privacy", "erase", "--subject", bob, "--allowlist", str(root), "--yes"]) == 2
    assert "recorded in the agent's audit log" in capsys.readouterr().err
    assert load_personal(root).reviewers  # nothing erased
