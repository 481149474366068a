"""Each key-encryption backend against the real thing the tests start: boto3 against moto's
KMS server, hvac against an OpenBao dev server's transit engine. Round trip; a wrong key, a
wrong data key id, a denied token: refused (exit 1); unreachable: infrastructure (exit 3)."""

from __future__ import annotations

import secrets

import pytest

from defiagent.errors import ConfigError, InfraError, Refused
from defiagent.state_crypto.active import open_state_encryption
from defiagent.state_crypto.backends.aws_kms import AwsKmsBackend
from defiagent.state_crypto.backends.vault_transit import VaultTransitBackend
from defiagent.state_crypto.cipher import new_data_key
from defiagent.state_crypto.config import (
    AwsKmsKek,
    EncryptionConfig,
    VaultTransitKek,
)
from defiagent.state_crypto.keyfile import wrap_context
from defiagent.state_crypto.rekey import rekey_state_dir
from tests.state_crypto.conftest import REGION, closed_port, forget
from tests.state_crypto.helpers import MARKERS, raw_bytes, read_everything, write_everything

CONTEXT = wrap_context("0123456789abcdef")
OTHER_CONTEXT = wrap_context("fedcba9876543210")


def _symmetric_key(kms) -> str:
    return kms.create_key("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT")


# -- AWS KMS (moto server) ----------------------------------------------------------------


def test_kms_wraps_and_unwraps_a_data_key(kms):
    backend = AwsKmsBackend(_symmetric_key(kms), REGION, kms.endpoint_url)
    key = new_data_key()
    wrapped = backend.wrap(key, CONTEXT)
    assert key not in wrapped
    assert backend.unwrap(wrapped, CONTEXT) == key


def test_kms_refuses_another_key_and_another_data_key_id(kms):
    backend = AwsKmsBackend(_symmetric_key(kms), REGION, kms.endpoint_url)
    wrapped = backend.wrap(new_data_key(), CONTEXT)
    # moto answers AccessDeniedException where KMS answers IncorrectKeyException: a refusal
    with pytest.raises(Refused, match="aws-kms:") as wrong:
        AwsKmsBackend(_symmetric_key(kms), REGION, kms.endpoint_url).unwrap(wrapped, CONTEXT)
    assert wrong.value.exit_code == 1
    with pytest.raises(Refused, match="does not unwrap"):
        backend.unwrap(wrapped, OTHER_CONTEXT)  # the encryption context binds the id
    with pytest.raises(Refused, match="missing"):
        AwsKmsBackend("alias/no-such-key", REGION, kms.endpoint_url).wrap(b"k" * 32, CONTEXT)


def test_kms_a_data_key_swapped_in_the_key_file_is_refused(kms, state_dir):
    """The encryption context binds each wrapped key to its id."""
    from defiagent.errors import Refused as _Refused
    from defiagent.state_crypto.active import cipher_for
    from defiagent.state_crypto.keyfile import read_key_file, write_key_file

    settings = EncryptionConfig(
        enabled=True,
        backend="aws-kms",
        aws_kms=AwsKmsKek(key_id=_symmetric_key(kms), region=REGION, endpoint_url=kms.endpoint_url),
    )
    open_state_encryption(state_dir, settings)
    write_everything(state_dir)
    rekey_state_dir(state_dir, settings)  # two data keys: the audit log keeps the first
    kf = read_key_file(state_dir)
    first, second = kf.keys
    swapped = [first.model_copy(update={"wrapped": second.wrapped}), second]
    write_key_file(state_dir, kf.model_copy(update={"keys": swapped}))
    forget(state_dir)
    with pytest.raises(_Refused, match="InvalidCiphertextException"):
        cipher_for(state_dir)


def test_kms_unreachable_is_exit_3(kms):
    backend = AwsKmsBackend("alias/x", REGION, f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(InfraError, match="KMS cannot be reached") as err:
        backend.unwrap(b"x" * 64, CONTEXT)
    assert err.value.exit_code == 3


def test_kms_endpoint_must_be_https_unless_loopback():
    with pytest.raises(ConfigError, match="plain http to"):
        AwsKmsBackend("alias/x", REGION, "http://kms.example.com")


def test_a_state_dir_under_kms_round_trips_and_rekeys_from_the_keyring(
    kms, state_dir, file_keyring
):
    write_everything(state_dir)
    settings = EncryptionConfig(
        enabled=True,
        backend="aws-kms",
        aws_kms=AwsKmsKek(key_id=_symmetric_key(kms), region=REGION, endpoint_url=kms.endpoint_url),
    )
    before = read_everything(state_dir)
    rekey_state_dir(state_dir, settings)  # plaintext -> KMS
    forget(state_dir)
    assert open_state_encryption(state_dir, settings).source.startswith("aws-kms:")
    assert read_everything(state_dir) == before
    assert MARKERS[0].encode() not in (state_dir / "trades.jsonl").read_bytes()


# -- Vault transit (OpenBao dev server) ----------------------------------------------------


def _vault(server, key_name: str, token: str = "env:DEFIAGENT_TEST_VAULT_TOKEN"):  # noqa: S107
    return VaultTransitBackend(server.url, key_name=key_name, token=token)


def test_transit_wraps_and_unwraps_a_data_key(transit):
    backend = _vault(transit, f"k-{secrets.token_hex(4)}")
    key = new_data_key()
    wrapped = backend.wrap(key, CONTEXT, create=True)  # makes the transit key
    assert wrapped.startswith(b"vault:v1:")
    assert backend.unwrap(wrapped, CONTEXT) == key


def test_transit_refuses_another_key_another_id_and_a_denied_token(transit, monkeypatch):
    backend = _vault(transit, f"k-{secrets.token_hex(4)}")
    wrapped = backend.wrap(new_data_key(), CONTEXT, create=True)
    other = _vault(transit, f"k-{secrets.token_hex(4)}")
    other.wrap(new_data_key(), CONTEXT, create=True)
    with pytest.raises(Refused, match="does not unwrap with vault-transit:"):
        other.unwrap(wrapped, CONTEXT)
    with pytest.raises(Refused, match="does not unwrap"):
        backend.unwrap(wrapped, OTHER_CONTEXT)  # the associated data binds the id
    reader = transit.token_for(paths=["secret/data/nothing"], name="no-transit")
    monkeypatch.setenv("READER_TOKEN", reader)
    denied = _vault(transit, backend.key_name, token="env:READER_TOKEN")
    with pytest.raises(Refused, match="denied access"):
        denied.unwrap(wrapped, CONTEXT)
    with pytest.raises(Refused, match="missing"):
        _vault(transit, "never-made").unwrap(wrapped, CONTEXT)


def test_transit_token_unset_is_exit_3_naming_the_reference(transit, monkeypatch):
    monkeypatch.delenv("DEFIAGENT_TEST_UNSET_TOKEN", raising=False)
    backend = _vault(transit, "k", token="env:DEFIAGENT_TEST_UNSET_TOKEN")
    with pytest.raises(InfraError, match="DEFIAGENT_TEST_UNSET_TOKEN") as err:
        backend.unwrap(b"vault:v1:x", CONTEXT)
    assert err.value.exit_code == 3


def test_transit_unreachable_is_exit_3(monkeypatch):
    monkeypatch.setenv("T", "token")
    backend = VaultTransitBackend(f"http://127.0.0.1:{closed_port()}", token="env:T")
    with pytest.raises(InfraError, match="Vault cannot be reached"):
        backend.unwrap(b"vault:v1:x", CONTEXT)


def test_remote_vault_must_be_https():
    with pytest.raises(ConfigError, match="plain http to"):
        VaultTransitBackend("http://vault.example.com:8200")


def test_a_state_dir_under_transit_round_trips(transit, state_dir):
    settings = EncryptionConfig(
        enabled=True,
        backend="vault-transit",
        vault_transit=VaultTransitKek(
            url=transit.url,
            key_name=f"state-{secrets.token_hex(4)}",
            token="env:DEFIAGENT_TEST_VAULT_TOKEN",
        ),
    )
    open_state_encryption(state_dir, settings)
    written = write_everything(state_dir)
    assert written["enrolment"].secret.encode() not in raw_bytes(state_dir)
    forget(state_dir)
    assert read_everything(state_dir)["call"] == written["call"]
