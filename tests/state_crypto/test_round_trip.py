"""Encryption at rest, end to end on the real file layers, under a key in a file keyring:
every sensitive file sealed, read back equal by a fresh process, the audit chain verifiable
without the key, and every wrong or missing key a refusal, never a fresh start."""

from __future__ import annotations

import base64
import json
import os
import sqlite3

import keyring
import pytest

from defiagent.cli.app import main
from defiagent.errors import ConfigError, Refused
from defiagent.monitoring.audit_log import verify_audit_log
from defiagent.reporting.build import read_records
from defiagent.risk.trades import TradeLedger
from defiagent.state_crypto.active import cipher_for, open_state_encryption
from defiagent.state_crypto.config import EncryptionConfig, KeyringKek
from defiagent.state_crypto.keyfile import FILENAME
from tests.state_crypto.conftest import forget
from tests.state_crypto.helpers import MARKERS, raw_bytes, read_everything, write_everything


def test_every_sensitive_file_is_sealed_and_reads_back_equal(state_dir, keyring_settings):
    assert open_state_encryption(state_dir, keyring_settings) is not None
    written = write_everything(state_dir)
    blob = raw_bytes(state_dir)
    for marker in (*MARKERS, written["enrolment"].secret):
        assert marker.encode() not in blob, marker  # nothing readable on disk
    forget(state_dir)  # a new process: unwraps the data key from state-key.json
    back = read_everything(state_dir)
    assert back["trades"][0].strategy == "momentum-strategy"
    assert back["spent"] == 12.5
    assert back["portfolio"] == [(100.0, 1000.0)]
    assert back["enrolment"] == written["enrolment"]
    assert back["call"] == written["call"]
    assert back["raw"] == [written["call"] and "0x02f8" + "be" * 60]
    # The chain is over the ciphertext: it verifies with no data key at all...
    forget(state_dir)
    keyring.delete_password("defiagent-test", "state-key")
    assert verify_audit_log(state_dir / "audit.jsonl").ok


def test_the_report_reads_sealed_audit_payloads(state_dir, keyring_settings):
    open_state_encryption(state_dir, keyring_settings)
    write_everything(state_dir)
    forget(state_dir)
    records, bad = read_records(state_dir / "audit.jsonl")
    assert bad == 0
    assert records[0][1]["payload"] == {"what": "audited-secret"}


def test_a_wrong_key_is_refused_with_exit_1_never_a_fresh_start(state_dir, keyring_settings):
    open_state_encryption(state_dir, keyring_settings)
    write_everything(state_dir)
    forget(state_dir)
    # the same keyring entry now holds another 32-byte key: the wrong key
    keyring.set_password("defiagent-test", "state-key", base64.b64encode(os.urandom(32)).decode())
    with pytest.raises(Refused, match="does not unwrap with keyring:defiagent-test/state-key"):
        open_state_encryption(state_dir, keyring_settings)
    with pytest.raises(Refused, match="does not unwrap"):
        TradeLedger(state_dir / "trades.jsonl")  # not an empty ledger
    assert main(["state", "status", "--state-dir", str(state_dir)]) == 1


def test_a_missing_key_is_refused(state_dir, keyring_settings, capsys):
    open_state_encryption(state_dir, keyring_settings)
    write_everything(state_dir)
    forget(state_dir)
    keyring.delete_password("defiagent-test", "state-key")
    with pytest.raises(Refused, match="is missing: keyring:defiagent-test/state-key"):
        cipher_for(state_dir)
    assert main(["state", "status", "--state-dir", str(state_dir), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["error"]["exit_code"] == 1


def test_an_unreadable_keyring_is_exit_3(state_dir, keyring_settings, monkeypatch):
    open_state_encryption(state_dir, keyring_settings)
    write_everything(state_dir)
    forget(state_dir)
    from keyring.backends.fail import Keyring as NoKeyring

    keyring.set_keyring(NoKeyring())
    assert main(["state", "status", "--state-dir", str(state_dir)]) == 3


def test_sealed_files_without_their_key_file_are_refused(state_dir, keyring_settings):
    """Deleting state-key.json does not turn the state dir into a new, empty one."""
    open_state_encryption(state_dir, keyring_settings)
    write_everything(state_dir)
    forget(state_dir)
    (state_dir / FILENAME).unlink()
    for read in (
        lambda: TradeLedger(state_dir / "trades.jsonl"),
        lambda: read_everything(state_dir),
    ):
        with pytest.raises(Refused, match=f"encrypted but the state dir .* has no {FILENAME}"):
            read()
    # and with encryption on in the config, it does not make a new key over them either
    with pytest.raises(Refused, match=r"holds encrypted files .* but no state-key\.json"):
        open_state_encryption(state_dir, keyring_settings)


def test_a_sealed_value_moved_to_another_place_does_not_open(state_dir, keyring_settings):
    open_state_encryption(state_dir, keyring_settings)
    write_everything(state_dir)
    # a trade line copied into the spend file (same key, another role)
    trade_line = (state_dir / "trades.jsonl").read_text()
    (state_dir / "spend.jsonl").write_text(trade_line)
    from defiagent.agent.state import SpendLedger

    with pytest.raises(Refused, match=r"line 1 of .*spend\.jsonl does not decrypt"):
        SpendLedger(60, state_dir / "spend.jsonl")
    # a plaintext line slipped into an encrypted ledger
    (state_dir / "spend.jsonl").write_text("[1.0, 0.0]\n")
    with pytest.raises(Refused, match="not encrypted, though the state dir is"):
        SpendLedger(60, state_dir / "spend.jsonl")
    # a sealed planned call moved to another journal row
    from defiagent.execution.journal import Journal
    from tests.state_crypto.helpers import planned_call

    with Journal(state_dir / "journal.sqlite") as journal:
        journal.plan(planned_call("intent-2"), 1)
    db = sqlite3.connect(state_dir / "journal.sqlite")
    sealed = db.execute("SELECT call_json FROM entries WHERE intent_id='intent-1'").fetchone()[0]
    db.execute("UPDATE entries SET call_json=? WHERE intent_id='intent-2'", (sealed,))
    db.commit()
    db.close()
    with (
        Journal(state_dir / "journal.sqlite") as journal,
        pytest.raises(Refused, match="moved from another record"),
    ):
        journal.for_intent("intent-2")


def test_turning_encryption_on_over_plaintext_state_is_refused(state_dir, keyring_settings):
    write_everything(state_dir)  # plaintext: no key file yet
    with pytest.raises(Refused, match="state rekey"):
        open_state_encryption(state_dir, keyring_settings)
    assert not (state_dir / FILENAME).exists()


def test_a_config_naming_another_key_is_a_config_error(state_dir, keyring_settings):
    open_state_encryption(state_dir, keyring_settings)
    other = EncryptionConfig(enabled=True, backend="keyring", keyring=KeyringKek(service="x"))
    with pytest.raises(ConfigError, match="encrypted under keyring:defiagent-test/state-key"):
        open_state_encryption(state_dir, other)


def test_encryption_off_leaves_a_state_dir_plaintext(state_dir):
    assert open_state_encryption(state_dir, EncryptionConfig()) is None
    write_everything(state_dir)
    assert b"momentum-strategy" in (state_dir / "trades.jsonl").read_bytes()
    assert read_everything(state_dir)["spent"] == 12.5


def test_a_wrapped_data_key_swapped_in_the_key_file_is_refused(state_dir, keyring_settings):
    """Whatever the backend does with the wrap context, an unwrapped key must match its id."""
    from defiagent.state_crypto.keyfile import read_key_file, write_key_file
    from defiagent.state_crypto.rekey import rekey_state_dir

    open_state_encryption(state_dir, keyring_settings)
    write_everything(state_dir)
    rekey_state_dir(state_dir, keyring_settings)  # the audit log keeps the first key: two keys
    kf = read_key_file(state_dir)
    first, second = kf.keys
    swapped = [first.model_copy(update={"wrapped": second.wrapped}), second]
    write_key_file(state_dir, kf.model_copy(update={"keys": swapped}))
    forget(state_dir)
    with pytest.raises(Refused, match="does not unwrap with keyring:defiagent-test"):
        cipher_for(state_dir)  # the keyring backend binds the id in its own AEAD


def test_a_key_check_that_does_not_match_is_refused(state_dir, keyring_settings):
    """Whatever a backend does with the wrap context, the unwrapped key must be the one
    its check value names."""
    from defiagent.state_crypto.keyfile import read_key_file, write_key_file

    open_state_encryption(state_dir, keyring_settings)
    kf = read_key_file(state_dir)
    (only,) = kf.keys
    write_key_file(
        state_dir, kf.model_copy(update={"keys": [only.model_copy(update={"check": "00" * 32})]})
    )
    forget(state_dir)
    with pytest.raises(Refused, match=f"what it unwraps is not data key {only.id}"):
        cipher_for(state_dir)
