"""Fixtures for state encryption: a real file keyring backend (keyrings.alt) in a temp dir,
a private state dir, and the process's open-cipher cache cleared around each test."""

from __future__ import annotations

import keyring
import keyring.core
import pytest
from keyrings.alt.file import PlaintextKeyring

from defiagent.state_crypto import active
from defiagent.state_crypto.config import EncryptionConfig, KeyringKek


@pytest.fixture
def file_keyring(tmp_path, monkeypatch):
    """The OS keyring API backed by a plain file in the test's temp dir."""
    monkeypatch.setattr(keyring.core, "_keyring_backend", None)  # restored after the test
    backend = PlaintextKeyring()
    backend.file_path = str(tmp_path / "keyring.cfg")
    keyring.set_keyring(backend)
    return backend


@pytest.fixture
def state_dir(tmp_path):
    path = tmp_path / "state"
    path.mkdir(mode=0o700)
    yield path
    active.register(path, None)


@pytest.fixture
def keyring_settings(file_keyring) -> EncryptionConfig:
    return EncryptionConfig(
        enabled=True, backend="keyring", keyring=KeyringKek(service="defiagent-test")
    )


def forget(path) -> None:
    """Drop the process's unwrapped keys: the next read unwraps from the key file again, as
    a new process would."""
    active.register(path, None)


REGION = "us-east-1"


@pytest.fixture(scope="session")
def local_kms():
    """moto's KMS server on loopback (the real boto3 client talks to it over HTTP)."""
    from defiagent.signing.testing.moto_kms import LocalKms

    with LocalKms(REGION) as kms:
        yield kms


@pytest.fixture
def kms(local_kms, monkeypatch, tmp_path):
    """Credentials through boto3's standard chain only: fake values, no developer files."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return local_kms


@pytest.fixture
def transit(openbao_session, monkeypatch):
    """The transit engine of a real OpenBao dev server; its root token in an env variable
    (the state key refers to it as env:DEFIAGENT_TEST_VAULT_TOKEN)."""
    import contextlib

    import hvac.exceptions

    client = openbao_session.client()
    with contextlib.suppress(hvac.exceptions.InvalidRequest):  # mounted by an earlier test
        client.sys.enable_secrets_engine("transit")
    monkeypatch.setenv("DEFIAGENT_TEST_VAULT_TOKEN", openbao_session.token)
    return openbao_session


def closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
