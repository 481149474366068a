"""`defiagent keystore ...` and `defiagent signer ...`, through the real CLI entry point."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from eth_account import Account

from defiagent.cli.app import main
from defiagent.signing import ledger as ledger_module
from defiagent.signing.keystore import write_keystore

PASSWORD = "correct horse battery staple"
DEFIAGENT = Path(sys.executable).parent / "defiagent"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def pw_env(monkeypatch):
    monkeypatch.setenv("DEV_KEY_PASSWORD", PASSWORD)
    return "DEV_KEY_PASSWORD"


def _config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text("[chain]\nrpc_url = 'http://127.0.0.1:8545'\n\n[signer]\n" + body)
    return path


def test_keystore_new_then_address(capsys, tmp_path, pw_env):
    out_file = tmp_path / "keys" / "dev.json"
    code, out, _ = run(
        capsys, "keystore", "new", "--out", str(out_file), "--password-env", pw_env,
        "--light-kdf", "--json",
    )  # fmt: skip
    assert code == 0
    created = json.loads(out)
    assert created["ok"] is True
    assert stat.S_IMODE(out_file.stat().st_mode) == 0o600
    code, out, _ = run(capsys, "keystore", "address", str(out_file), "--json")
    assert code == 0
    assert json.loads(out)["address"] == created["address"]
    # The same path again is refused, not overwritten.
    code, out, err = run(
        capsys, "keystore", "new", "--out", str(out_file), "--password-env", pw_env, "--json"
    )
    assert code == 2
    assert json.loads(out)["error"]["kind"] == "config"
    assert "already exists" in err


def test_keystore_import_from_stdin_never_echoes_the_key(capsys, tmp_path, pw_env, monkeypatch):
    account = Account.create()
    key_hex = bytes(account.key).hex()
    monkeypatch.setattr("sys.stdin", io.StringIO("0x" + key_hex + "\n"))
    out_file = tmp_path / "imported.json"
    code, out, err = run(
        capsys, "keystore", "import", "--out", str(out_file), "--key-stdin",
        "--password-env", pw_env, "--light-kdf", "--json",
    )  # fmt: skip
    assert code == 0
    assert json.loads(out)["address"] == account.address
    assert key_hex not in out + err
    assert key_hex not in out_file.read_text()


def test_keystore_import_prompts_read_stdin_when_not_a_terminal(capsys, tmp_path, monkeypatch):
    account = Account.create()
    key_hex = bytes(account.key).hex()
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{key_hex}\n{PASSWORD}\n{PASSWORD}\n"))
    out_file = tmp_path / "prompted.json"
    code, out, err = run(
        capsys, "keystore", "import", "--out", str(out_file), "--light-kdf", "--json"
    )
    assert code == 0
    assert json.loads(out)["address"] == account.address
    assert key_hex not in out + err
    assert PASSWORD not in out + err


def test_keystore_import_rejects_a_bad_key_without_echoing_it(
    capsys, tmp_path, pw_env, monkeypatch
):
    monkeypatch.setattr("sys.stdin", io.StringIO("deadbeef-not-a-key\n"))
    code, out, err = run(
        capsys, "keystore", "import", "--out", str(tmp_path / "x.json"), "--key-stdin",
        "--password-env", pw_env,
    )  # fmt: skip
    assert code == 2
    assert "64 hex digits" in err
    assert "deadbeef" not in out + err
    assert not (tmp_path / "x.json").exists()


def test_signer_address_with_a_keystore(capsys, tmp_path, pw_env):
    account = Account.create()
    write_keystore(tmp_path / "dev.json", bytes(account.key), PASSWORD, light=True)
    config = _config(
        tmp_path, f'backend = "keystore"\npath = "dev.json"\npassword_env = "{pw_env}"\n'
    )
    code, out, _ = run(capsys, "signer", "address", "--config", str(config), "--json")
    assert code == 0
    assert json.loads(out) == {
        "ok": True,
        "backend": "keystore",
        "address": account.address,
        "confirmed_on_device": False,
    }
    code, out, _ = run(capsys, "signer", "check", "--config", str(config), "--json")
    assert code == 0
    assert json.loads(out)["address"] == account.address


def test_signer_refuses_a_group_readable_keystore(capsys, tmp_path, pw_env):
    write_keystore(tmp_path / "dev.json", bytes(Account.create().key), PASSWORD, light=True)
    os.chmod(tmp_path / "dev.json", 0o640)
    config = _config(
        tmp_path, f'backend = "keystore"\npath = "dev.json"\npassword_env = "{pw_env}"\n'
    )
    code, _, err = run(capsys, "signer", "address", "--config", str(config))
    assert code == 2
    assert "readable by group or others" in err
    assert "Traceback" not in err


def test_signer_address_with_kms(capsys, tmp_path, kms, kms_key):
    config = _config(
        tmp_path,
        f'backend = "kms"\nkey_id = "{kms_key}"\nregion = "us-east-1"\n'
        f'endpoint_url = "{kms.endpoint_url}"\n',
    )
    code, out, _ = run(capsys, "signer", "address", "--config", str(config), "--json")
    assert code == 0
    address = json.loads(out)["address"]
    code, out, _ = run(capsys, "signer", "check", "--config", str(config), "--json")
    assert code == 0
    assert json.loads(out)["address"] == address
    code, _, err = run(capsys, "signer", "address", "--config", str(config), "--confirm")
    assert code == 2
    assert "--confirm needs a Ledger" in err


def test_signer_address_with_a_ledger(capsys, tmp_path, device, monkeypatch):
    monkeypatch.setattr(ledger_module, "open_hid_dongle", lambda: device)
    config = _config(tmp_path, 'backend = "ledger"\nderivation_path = "44\'/60\'/0\'/0/5"\n')
    code, out, _ = run(capsys, "signer", "address", "--config", str(config), "--json")
    assert code == 0
    assert json.loads(out)["address"] == device.address_at("m/44'/60'/0'/0/5")
    assert device.reviews == []

    code, out, _ = run(capsys, "signer", "address", "--config", str(config), "--confirm", "--json")
    assert code == 0
    assert json.loads(out)["confirmed_on_device"] is True
    assert device.reviews[-1].kind == "address"

    device.user = "reject"
    code, out, err = run(
        capsys, "signer", "address", "--config", str(config), "--confirm", "--json"
    )
    assert code == 1
    assert "rejected on the Ledger" in err

    device.locked = True
    code, out, err = run(capsys, "signer", "address", "--config", str(config), "--json")
    assert code == 3
    assert json.loads(out)["error"]["kind"] == "infrastructure"
    assert "locked" in err


def test_signer_config_errors_exit_2(capsys, tmp_path):
    config = _config(tmp_path, 'backend = "keystore"\npath = "k.json"\npassword = "hunter2"\n')
    code, _, err = run(capsys, "signer", "address", "--config", str(config))
    assert code == 2
    assert "secrets do not belong in the config" in err
    assert "hunter2" not in err
    code, _, err = run(capsys, "signer", "address", "--config", str(tmp_path / "missing.toml"))
    assert code == 2


@pytest.mark.skipif(not DEFIAGENT.exists(), reason="console script not installed")
def test_installed_binary_imports_a_key_from_stdin(tmp_path):
    account = Account.create()
    key_hex = bytes(account.key).hex()
    out_file = tmp_path / "bin.json"
    env = {**os.environ, "DEV_KEY_PASSWORD": PASSWORD}
    argv = [
        str(DEFIAGENT), "keystore", "import", "--out", str(out_file), "--key-stdin",
        "--password-env", "DEV_KEY_PASSWORD", "--light-kdf", "--json",
    ]  # fmt: skip
    done = subprocess.run(argv, input=key_hex + "\n", capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["address"] == account.address
    assert key_hex not in done.stdout + done.stderr
    assert all(key_hex not in arg for arg in argv)
