"""Keystore signer (development only) and the password sources."""

from __future__ import annotations

import io
import json
import stat

import keyring
import keyring.core
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from keyring.backend import KeyringBackend

from defiagent.errors import ConfigError
from defiagent.signing.base import SignatureMismatch, Signer
from defiagent.signing.keystore import KeystoreSigner, write_keystore
from defiagent.signing.passwords import KeyringRef, prompt_secret, resolve_password
from tests.signing.helpers import TYPED_DATA, run_on_anvil

PASSWORD = "correct horse battery staple"


@pytest.fixture
def account():
    return Account.create()


@pytest.fixture
def keyfile(tmp_path, account):
    path = tmp_path / "keys" / "dev.json"
    write_keystore(path, bytes(account.key), PASSWORD, light=True)
    return path


def test_written_file_is_v3_scrypt_and_private(keyfile, account):
    assert stat.S_IMODE(keyfile.stat().st_mode) == 0o600
    assert stat.S_IMODE(keyfile.parent.stat().st_mode) == 0o700
    document = json.loads(keyfile.read_text())
    assert document["version"] == 3
    assert document["crypto"]["kdf"] == "scrypt"
    assert bytes(account.key).hex() not in keyfile.read_text()
    assert Account.decrypt(document, PASSWORD) == bytes(account.key)


@pytest.mark.slow
def test_default_work_factor_is_the_standard_one(tmp_path, account):
    path = tmp_path / "std.json"
    write_keystore(path, bytes(account.key), PASSWORD)
    assert json.loads(path.read_text())["crypto"]["kdfparams"]["n"] == 262144


def test_signs_on_anvil(w3, keyfile, account):
    signer = KeystoreSigner(keyfile, PASSWORD)
    assert isinstance(signer, Signer)
    assert signer.address == account.address
    run_on_anvil(w3, signer)


def test_messages_and_typed_data(keyfile, account):
    signer = KeystoreSigner(keyfile, PASSWORD)
    signature = signer.sign_message(b"gm")
    assert Account.recover_message(encode_defunct(b"gm"), signature=signature) == account.address
    signature = signer.sign_typed_data(TYPED_DATA)
    signable = encode_typed_data(full_message=TYPED_DATA)
    assert Account.recover_message(signable, signature=signature) == account.address


def test_key_does_not_leak_through_repr(keyfile, account):
    signer = KeystoreSigner(keyfile, PASSWORD)
    assert bytes(account.key).hex() not in repr(signer)
    assert bytes(account.key).hex() not in str(vars(signer))


def test_wrong_password(keyfile):
    with pytest.raises(ConfigError, match=r"password for .* is wrong"):
        KeystoreSigner(keyfile, "not it")


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_refuses_a_file_open_to_group_or_others(keyfile, mode):
    keyfile.chmod(mode)
    with pytest.raises(ConfigError, match="readable by group or others") as info:
        KeystoreSigner(keyfile, PASSWORD)
    assert f"chmod 600 {keyfile}" in str(info.value)


def test_refuses_to_overwrite(keyfile, account):
    before = keyfile.read_text()
    with pytest.raises(ConfigError, match="already exists"):
        write_keystore(keyfile, bytes(Account.create().key), PASSWORD, light=True)
    assert keyfile.read_text() == before


def test_refuses_invalid_keys(tmp_path):
    with pytest.raises(ConfigError, match="32 bytes"):
        write_keystore(tmp_path / "a.json", b"\x01" * 31, PASSWORD, light=True)
    with pytest.raises(ConfigError, match="not a valid"):
        write_keystore(tmp_path / "b.json", b"\x00" * 32, PASSWORD, light=True)


def test_a_file_whose_address_was_edited_is_refused(keyfile, alerts):
    document = json.loads(keyfile.read_text())
    document["address"] = Account.create().address[2:].lower()
    keyfile.write_text(json.dumps(document))
    with pytest.raises(SignatureMismatch, match="says"):
        KeystoreSigner(keyfile, PASSWORD)
    assert alerts


def test_pinned_address_must_match(keyfile):
    with pytest.raises(SignatureMismatch, match="not the configured"):
        KeystoreSigner(keyfile, PASSWORD, expected_address=Account.create().address)


def test_not_a_keystore(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"version": 1}')
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="version 3"):
        KeystoreSigner(path, PASSWORD)
    with pytest.raises(ConfigError, match="does not exist"):
        KeystoreSigner(tmp_path / "missing.json", PASSWORD)


# --- password sources ----------------------------------------------------------------


class MemoryKeyring(KeyringBackend):
    priority = 1

    def __init__(self):
        super().__init__()
        self.store = {}

    def get_password(self, service, username):
        return self.store.get((service, username))

    def set_password(self, service, username, password):
        self.store[(service, username)] = password

    def delete_password(self, service, username):
        self.store.pop((service, username), None)


def test_password_from_env(monkeypatch):
    monkeypatch.setenv("DEV_KEY_PASSWORD", PASSWORD)
    assert resolve_password(env="DEV_KEY_PASSWORD") == PASSWORD
    monkeypatch.delenv("DEV_KEY_PASSWORD")
    with pytest.raises(ConfigError, match=r"DEV_KEY_PASSWORD .* is not set"):
        resolve_password(env="DEV_KEY_PASSWORD")
    with pytest.raises(ConfigError, match="NAME of an environment variable"):
        resolve_password(env="hunter2!")


def test_password_from_os_keyring(monkeypatch):
    monkeypatch.setattr(keyring.core, "_keyring_backend", None)  # restored after the test
    keyring.set_keyring(MemoryKeyring())
    ref = KeyringRef(service="defiagent", username="dev")
    with pytest.raises(ConfigError, match="keyring set defiagent dev"):
        resolve_password(keyring_ref=ref)
    keyring.set_password("defiagent", "dev", PASSWORD)
    assert resolve_password(keyring_ref=ref) == PASSWORD


def test_password_prompt_without_a_terminal_reads_stdin(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{PASSWORD}\n{PASSWORD}\n"))
    assert prompt_secret("Password", confirm=True) == PASSWORD
    monkeypatch.setattr("sys.stdin", io.StringIO("one\ntwo\n"))
    with pytest.raises(ConfigError, match="do not match"):
        prompt_secret("Password", confirm=True)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(ConfigError, match="no password"):
        prompt_secret("Password")
