"""The [signer] table: one backend chosen by `backend`, secrets refused, build_signer."""

from __future__ import annotations

import pytest
from eth_account import Account
from pydantic import BaseModel

from defiagent.errors import ConfigError
from defiagent.signing.base import SignatureMismatch
from defiagent.signing.config import (
    KeystoreSignerConfig,
    KmsSignerConfig,
    LedgerSignerConfig,
    SignerConfig,
    build_signer,
    load_signer_config,
    parse_signer_config,
)
from defiagent.signing.keystore import KeystoreSigner, write_keystore
from defiagent.signing.kms import KmsSigner
from defiagent.signing.ledger import LedgerSigner

AGENT_TOML = """
[chain]
rpc_url = "http://127.0.0.1:8545"

[signer]
backend = "kms"
key_id = "alias/defiagent"
region = "eu-west-1"

[risk.limits]
max_daily_loss = 0.02
"""


def test_each_backend_parses():
    keystore = parse_signer_config(
        {"backend": "keystore", "path": "keys/dev.json", "password_env": "DEV_PW"}
    )
    assert isinstance(keystore, KeystoreSignerConfig)
    ledger = parse_signer_config({"backend": "ledger", "derivation_path": "44'/60'/3'/0/0"})
    assert isinstance(ledger, LedgerSignerConfig)
    assert ledger.timeout_seconds == 60
    kms = parse_signer_config({"backend": "kms", "key_id": "k", "region": "eu-west-1"})
    assert isinstance(kms, KmsSignerConfig)
    assert kms.endpoint_url is None


def test_embeds_in_another_model_as_a_discriminated_union():
    # How the agent config embeds it.
    class Agent(BaseModel):
        signer: SignerConfig

    agent = Agent.model_validate({"signer": {"backend": "ledger"}})
    assert isinstance(agent.signer, LedgerSignerConfig)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"backend": "trezor"}, "backend"),
        ({"backend": "keystore", "path": "k.json", "password": "x"}, "secrets do not belong"),
        ({"backend": "kms", "key_id": "k", "region": "r", "aws_secret_access_key": "x"}, "secrets"),
        ({"backend": "ledger", "mnemonic": "abandon"}, "secrets do not belong"),
        ({"backend": "keystore", "path": "k.json", "password_env": "pw is here!"}, "NAME"),
        (
            {
                "backend": "keystore",
                "path": "k.json",
                "password_env": "A",
                "password_keyring": {"service": "s", "username": "u"},
            },
            "not both",
        ),
        ({"backend": "ledger", "derivation_path": "44'/60'/x"}, "derivation_path"),
        ({"backend": "kms", "key_id": "k", "region": "r", "endpoint_url": "file:///x"}, "http"),
        ({"backend": "kms", "key_id": "k"}, "region"),
        ({"backend": "ledger", "address": "0x1234"}, "not an Ethereum address"),
        ({"backend": "ledger", "derivation": "typo"}, "derivation"),
    ],
)
def test_bad_tables_are_one_sentence_config_errors(table, message):
    with pytest.raises(ConfigError, match=message) as info:
        parse_signer_config(table)
    assert info.value.exit_code == 2
    assert "\n" not in str(info.value)


def test_secret_values_are_not_echoed_in_errors():
    with pytest.raises(ConfigError) as info:
        parse_signer_config({"backend": "keystore", "path": "k", "password": "s3cr3t-value"})
    assert "s3cr3t-value" not in str(info.value)


def test_load_reads_only_the_signer_table(tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text(AGENT_TOML)
    cfg = load_signer_config(path)
    assert isinstance(cfg, KmsSignerConfig)
    assert cfg.key_id == "alias/defiagent"


def test_load_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_signer_config(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[signer\nbackend=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_signer_config(bad)
    empty = tmp_path / "empty.toml"
    empty.write_text("[chain]\nrpc_url = 'x'\n")
    with pytest.raises(ConfigError, match="no \\[signer\\] table"):
        load_signer_config(empty)


def test_build_signer_picks_the_backend(tmp_path, monkeypatch, device):
    account = Account.create()
    write_keystore(tmp_path / "keys" / "dev.json", bytes(account.key), "pw", light=True)
    monkeypatch.setenv("DEV_PW", "pw")
    keystore_cfg = parse_signer_config(
        {"backend": "keystore", "path": "keys/dev.json", "password_env": "DEV_PW"}
    )
    signer = build_signer(keystore_cfg, base_dir=tmp_path)  # relative to the config's folder
    assert isinstance(signer, KeystoreSigner)
    assert signer.address == account.address

    ledger_cfg = parse_signer_config({"backend": "ledger", "timeout_seconds": 5})
    ledger = build_signer(ledger_cfg, ledger_dongle=device)
    assert isinstance(ledger, LedgerSigner)
    assert ledger.timeout == 5
    assert ledger.address == device.address_at()

    kms_cfg = parse_signer_config(
        {"backend": "kms", "key_id": "k", "region": "eu-west-1", "max_attempts": 2}
    )
    kms = build_signer(kms_cfg)
    assert isinstance(kms, KmsSigner)
    assert kms.retry.attempts == 2


def test_pinned_address_reaches_the_backend(device):
    other = Account.create().address
    cfg = parse_signer_config({"backend": "ledger", "address": other.lower()})
    assert cfg.address == other  # checksummed
    with pytest.raises(SignatureMismatch, match="not the configured"):
        _ = build_signer(cfg, ledger_dongle=device).address
