"""Real servers for the secret-reference tests: an OpenBao dev server and moto's Secrets
Manager, both on loopback, plus a clean process resolver for each test."""

from __future__ import annotations

import json
import os

import pytest

from defiagent.net import tls
from defiagent.secrets import resolver as resolver_module
from defiagent.secrets.settings import AwsSmSettings, SecretsConfig, VaultSettings


@pytest.fixture(autouse=True)
def _fresh_resolver():
    saved_resolver, saved_bundle = resolver_module._current, tls._ca_bundle
    resolver_module._current = resolver_module.SecretResolver()
    yield
    resolver_module._current, tls._ca_bundle = saved_resolver, saved_bundle


def write_private(path, text: str):
    path.write_text(text)
    path.chmod(0o600)
    return path


@pytest.fixture
def vault_settings(openbao_session, tmp_path) -> VaultSettings:
    """[secrets.vault] with auth = token-file, the root token in a 0600 file."""
    token_file = write_private(tmp_path / "vault-token", openbao_session.token)
    return VaultSettings(url=openbao_session.url, auth="token-file", token_file=token_file)


class LocalSecretsManager:
    """moto's server on loopback, reached by real boto3 calls."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"

    def client(self):
        import boto3

        return boto3.session.Session(region_name="us-east-1").client(
            "secretsmanager", endpoint_url=self.endpoint_url
        )

    def put(self, name: str, value: str | dict) -> str:
        text = value if isinstance(value, str) else json.dumps(value)
        return self.client().create_secret(Name=name, SecretString=text)["ARN"]

    def settings(self) -> AwsSmSettings:
        return AwsSmSettings(region="us-east-1", endpoint_url=self.endpoint_url)

    def stop(self) -> None:
        self._server.stop()


@pytest.fixture(scope="session")
def _moto_credentials():
    # moto accepts any credentials; never the developer's real ones.
    placeholders = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",  # the emulator's placeholder
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SESSION_TOKEN": None,
        "AWS_PROFILE": None,
    }
    saved = {key: os.environ.get(key) for key in placeholders}
    for key, value in placeholders.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def secrets_manager(_moto_credentials):
    server = LocalSecretsManager()
    yield server
    server.stop()


@pytest.fixture
def secrets_config(vault_settings, secrets_manager) -> SecretsConfig:
    return SecretsConfig(vault=vault_settings, aws_sm=secrets_manager.settings())
