"""`defiagent allowlist approve`: the operator's code only for the approval that activates."""

from __future__ import annotations

import json
import os

import pytest
from eth_account import Account

from defiagent.allowlist.models import AllowlistEntry, Role, SlitherSummary
from defiagent.allowlist.store import entry_path
from defiagent.allowlist.tomlio import read_entry, write_entry
from defiagent.cli.app import main
from defiagent.operator.gates import approval_would_activate
from defiagent.signing.keystore import write_keystore
from tests.allowlist.support import Keys, make_audit, make_root
from tests.operator.support import audit_records, code_at

PASSWORD_ENV = "DEFIAGENT_TEST_KEYSTORE_PASSWORD"


@pytest.fixture
def world(tmp_path, monkeypatch):
    """A 2-of-3 allowlist root, one unapproved entry that passes its checks, reviewer keystores."""
    keys = Keys()
    root = make_root(tmp_path / "contracts_allowlist", keys)
    codehash = "0x" + "ab" * 32
    entry = AllowlistEntry(
        chain_id=31337,
        address=Account.create().address,
        name="test contract",
        role=Role.OTHER,
        codehash=codehash,
        audits=[make_audit(keys.auditor, [codehash])],
        slither=SlitherSummary(slither_version="0.11.6", codehash=codehash, source_match="full"),
    )
    path = entry_path(root, entry.chain_id, entry.address)
    write_entry(path, entry)
    monkeypatch.setenv(PASSWORD_ENV, Account.create().key.hex())
    stores = []
    for i, account in enumerate(keys.reviewers):
        store = tmp_path / "keys" / f"r{i}.json"
        write_keystore(store, bytes(account.key), os.environ[PASSWORD_ENV], light=True)
        stores.append(store)
    return {"root": root, "entry": path, "keys": keys, "stores": stores}


def approve(capsys, world, reviewer: int, state, *extra) -> tuple[int, dict | None, str]:
    code = main(
        [
            "allowlist",
            "approve",
            str(world["entry"]),
            "--key",
            str(world["stores"][reviewer]),
            "--password-env",
            PASSWORD_ENV,
            "--allowlist",
            str(world["root"]),
            "--state-dir",
            str(state),
            "--json",
            *extra,
        ]
    )
    captured = capsys.readouterr()
    try:
        return code, json.loads(captured.out), captured.err
    except ValueError:
        return code, None, captured.err


def test_only_the_activating_approval_needs_the_code(world, enrolled, clock, monkeypatch, capsys):
    keys = world["keys"]
    assert not approval_would_activate(world["entry"], keys.reviewers[0].address, world["root"])
    code, doc, err = approve(capsys, world, 0, enrolled)
    assert code == 0, err  # 1 of 2: not active yet, no code asked
    assert doc["active"] is False
    assert approval_would_activate(world["entry"], keys.reviewers[1].address, world["root"])
    assert not approval_would_activate(world["entry"], keys.outsider.address, world["root"])
    before = world["entry"].read_bytes()
    code, _, err = approve(capsys, world, 1, enrolled)
    assert code == 1
    assert "activating allowlist entry" in err
    assert "needs the operator's current code" in err
    assert len(err.strip().splitlines()) == 1
    assert world["entry"].read_bytes() == before  # nothing signed
    clock.advance(30)
    monkeypatch.setenv("DEFIAGENT_OTP_CODE", code_at(enrolled, clock.t))
    code, doc, err = approve(capsys, world, 1, enrolled)
    assert code == 0, err
    assert doc["active"] is True
    assert len(read_entry(world["entry"]).approvals) == 2
    # already active: a third signature activates nothing and needs no code
    monkeypatch.delenv("DEFIAGENT_OTP_CODE")
    code, doc, err = approve(capsys, world, 2, enrolled)
    assert code == 0, err
    outcomes = [
        r["payload"]["outcome"]
        for r in audit_records(enrolled)
        if r["kind"] == "operator-2fa" and r["payload"]["action"].startswith("activating")
    ]
    assert outcomes == ["missing", "accepted"]


def test_no_operator_no_code(world, tmp_path, capsys):
    state = tmp_path / "no-operator"
    assert approve(capsys, world, 0, state)[0] == 0
    code, doc, err = approve(capsys, world, 1, state)
    assert code == 0, err
    assert doc["active"] is True


def test_state_dir_from_the_environment(world, enrolled, monkeypatch, capsys):
    monkeypatch.setenv("DEFIAGENT_STATE_DIR", str(enrolled))
    code = main(
        [
            "allowlist",
            "approve",
            str(world["entry"]),
            "--key",
            str(world["stores"][0]),
            "--password-env",
            PASSWORD_ENV,
            "--allowlist",
            str(world["root"]),
        ]
    )
    assert code == 0
    code = main(
        [
            "allowlist",
            "approve",
            str(world["entry"]),
            "--key",
            str(world["stores"][1]),
            "--password-env",
            PASSWORD_ENV,
            "--allowlist",
            str(world["root"]),
        ]
    )
    assert code == 1
    assert "needs the operator's current code" in capsys.readouterr().err
