"""`defiagent state rekey`: plaintext to encrypted, one key to another, and a crash midway
leaves a state the agent refuses and a second run finishes, never a half-rewritten one."""

from __future__ import annotations

import json

import pytest
import tomli_w

from defiagent.cli.app import main
from defiagent.errors import InfraError, Refused
from defiagent.execution.journal import Journal
from defiagent.monitoring.audit_log import verify_audit_log
from defiagent.state_crypto import rekey as rekey_module
from defiagent.state_crypto.active import cipher_for, open_state_encryption
from defiagent.state_crypto.config import EncryptionConfig, KeyringKek
from defiagent.state_crypto.keyfile import read_key_file
from defiagent.state_crypto.rekey import audit_key_ids, rekey_state_dir
from tests.state_crypto.conftest import forget
from tests.state_crypto.helpers import MARKERS, raw_bytes, read_everything, write_everything


def _settings(service: str) -> EncryptionConfig:
    return EncryptionConfig(enabled=True, backend="keyring", keyring=KeyringKek(service=service))


def test_rekey_encrypts_a_plaintext_state_dir(state_dir, file_keyring):
    write_everything(state_dir)
    before = read_everything(state_dir)
    result = rekey_state_dir(state_dir, _settings("first"))
    assert result.was == "plaintext"
    assert set(result.rewritten) == {
        "trades.jsonl",
        "spend.jsonl",
        "portfolio.jsonl",
        "operator-totp.json",
        "journal.sqlite",
    }
    forget(state_dir)
    blob = b"".join(
        (state_dir / n).read_bytes()
        for n in ("trades.jsonl", "spend.jsonl", "portfolio.jsonl", "operator-totp.json")
    )
    for marker in MARKERS[:2]:
        assert marker.encode() not in blob
    journal = b"".join(p.read_bytes() for p in state_dir.glob("journal.sqlite*"))
    for marker in MARKERS[2:4]:  # the calldata and the raw transaction, not in a free page
        assert marker.encode() not in journal
    assert read_everything(state_dir) == before
    # audit records written before stay plaintext (the chain covers them); the rekey is audited
    report = verify_audit_log(state_dir / "audit.jsonl")
    assert report.ok
    assert report.records == 2
    assert not read_key_file(state_dir).pending


def test_rekey_moves_to_a_new_key_and_drops_the_old_one_once_unused(state_dir, file_keyring):
    write_everything(state_dir)
    first = rekey_state_dir(state_dir, _settings("first"))
    second = rekey_state_dir(state_dir, _settings("second"))
    assert second.was == "keyring:first/state-key"
    assert second.now == "keyring:second/state-key"
    # the first rekey's audit record was sealed with the first data key: it stays held
    assert first.data_key in audit_key_ids(state_dir / "audit.jsonl")
    assert second.kept_keys == [first.data_key]
    forget(state_dir)
    file_keyring.delete_password("first", "state-key")  # the old key-encryption key: gone
    assert read_everything(state_dir)["spent"] == 12.5
    assert cipher_for(state_dir).current == second.data_key
    from defiagent.reporting.build import read_records

    records, bad = read_records(state_dir / "audit.jsonl")
    assert bad == 0
    assert [r["kind"] for _, r in records][-2:] == ["state-rekey", "state-rekey"]


def test_a_crash_midway_is_refused_then_finished_by_a_second_rekey(
    state_dir, file_keyring, monkeypatch
):
    write_everything(state_dir)
    rekey_state_dir(state_dir, _settings("first"))
    before = read_everything(state_dir)
    real = rekey_module._rewrite_jsonl
    calls = []

    def crash_on_second(path):
        calls.append(path.name)
        if len(calls) == 2:
            raise OSError("power cut")
        return real(path)

    monkeypatch.setattr(rekey_module, "_rewrite_jsonl", crash_on_second)
    with pytest.raises(OSError, match="power cut"):
        rekey_state_dir(state_dir, _settings("second"))
    monkeypatch.setattr(rekey_module, "_rewrite_jsonl", real)
    forget(state_dir)
    assert read_key_file(state_dir).pending
    with pytest.raises(Refused, match="was interrupted before it finished"):
        open_state_encryption(state_dir, _settings("second"))
    rekey_state_dir(state_dir, _settings("second"))
    forget(state_dir)
    open_state_encryption(state_dir, _settings("second"))
    assert read_everything(state_dir) == before


def test_rekey_refuses_while_the_agent_holds_the_journal(state_dir, file_keyring):
    write_everything(state_dir)
    with Journal(state_dir / "journal.sqlite"), pytest.raises(InfraError, match="another executor"):
        rekey_state_dir(state_dir, _settings("first"))
    assert read_key_file(state_dir) is None


def test_state_rekey_cli(state_dir, file_keyring, tmp_path, capsys):
    write_everything(state_dir)
    config = tmp_path / "agent.toml"
    config.write_text(
        tomli_w.dumps(
            {
                "rpc_url": "http://127.0.0.1:8545",
                "chain_id": 31337,
                "state_dir": str(state_dir),
                "protocols": {"router": "0x" + "11" * 20, "weth": "0x" + "22" * 20},
                "signer": {"backend": "keystore", "path": str(tmp_path / "k.json")},
                "state": {"encryption": {"enabled": True, "keyring": {"service": "cli"}}},
            }
        )
    )
    assert main(["state", "rekey", "-c", str(config), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"]
    assert out["now"] == "keyring:cli/state-key"
    forget(state_dir)
    assert main(["state", "status", "-c", str(config), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["encrypted"]
    assert status["key"] == "keyring:cli/state-key"
    assert b"momentum-strategy" not in raw_bytes(state_dir).split(b"audit")[0]


def test_run_refuses_an_encrypted_state_dir_whose_key_is_gone(
    state_dir, file_keyring, tmp_path, capsys
):
    """At start, before the RPC, the signer or a strategy is touched: exit 1, not a new
    state dir and not an RPC error."""
    write_everything(state_dir)
    rekey_state_dir(state_dir, _settings("agent"))
    forget(state_dir)
    file_keyring.delete_password("agent", "state-key")
    config = tmp_path / "agent.toml"
    config.write_text(
        tomli_w.dumps(
            {
                "rpc_url": "http://127.0.0.1:9",  # nothing listens: never reached
                "chain_id": 31337,
                "state_dir": str(state_dir),
                "protocols": {"router": "0x" + "11" * 20, "weth": "0x" + "22" * 20},
                "signer": {"backend": "keystore", "path": str(tmp_path / "k.json")},
                "require_backtest": False,
                "state": {"encryption": {"enabled": True, "keyring": {"service": "agent"}}},
            }
        )
    )
    before = sorted(p.name for p in state_dir.iterdir())
    assert main(["run", "-c", str(config), "--ticks", "1"]) == 1
    assert "is missing: keyring:agent/state-key" in capsys.readouterr().err
    assert sorted(p.name for p in state_dir.iterdir()) == before
