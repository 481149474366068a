"""`env:` and `keyring:` references, and the reference syntax itself."""

from __future__ import annotations

import keyring
import keyring.core
import pytest
from keyrings.alt.file import PlaintextKeyring
from pydantic import ValidationError

from defiagent.secrets import SecretResolver, SecretUnavailable, parse_reference
from defiagent.strategy.config import StrategyConfig
from defiagent.strategy.secrets import resolve_secrets

VALUE = "env-value-8vQm2"


def test_env_reference(monkeypatch):
    monkeypatch.setenv("DA_TEST_SECRET", VALUE)
    assert SecretResolver().resolve("env:DA_TEST_SECRET") == VALUE
    monkeypatch.delenv("DA_TEST_SECRET")
    with pytest.raises(SecretUnavailable, match="DA_TEST_SECRET is not set") as info:
        SecretResolver().resolve("env:DA_TEST_SECRET")
    assert info.value.exit_code == 3


def test_keyring_reference_with_a_real_file_backend(monkeypatch, tmp_path):
    monkeypatch.setattr(keyring.core, "_keyring_backend", None)  # restored after the test
    backend = PlaintextKeyring()
    backend.file_path = str(tmp_path / "keyring.cfg")
    keyring.set_keyring(backend)
    with pytest.raises(SecretUnavailable, match="keyring set defiagent model"):
        SecretResolver().resolve("keyring:defiagent/model")
    keyring.set_password("defiagent", "model", VALUE)
    assert SecretResolver().resolve("keyring:defiagent/model") == VALUE


@pytest.mark.parametrize(
    ("text", "scheme", "body", "field"),
    [
        ("env:RPC_URL", "env", "RPC_URL", None),
        ("keyring:svc/user", "keyring", "svc/user", None),
        ("vault:secret/agent/rpc#url", "vault", "secret/agent/rpc", "url"),
        ("vault:kv/a", "vault", "kv/a", None),
        ("aws-sm:prod/agent#api_key", "aws-sm", "prod/agent", "api_key"),
        (
            "aws-sm:arn:aws:secretsmanager:eu-west-1:123:secret:agent-AbC#k",
            "aws-sm",
            "arn:aws:secretsmanager:eu-west-1:123:secret:agent-AbC",
            "k",
        ),
    ],
)
def test_reference_forms(text, scheme, body, field):
    ref = parse_reference(text)
    assert (ref.scheme, ref.body, ref.field) == (scheme, body, field)
    assert str(ref) == text


@pytest.mark.parametrize(
    "text",
    [
        "sk-live-abcdef",  # a bare secret
        "https://rpc.example/v3/KEY",  # a URL is not a reference
        "env:1BAD",
        "env:A B",
        "keyring:noslash",
        "vault:onlymount",
        "vault:secret/a#",
        "vault:secret/a#b#c",
        "aws-sm:",
        "aws-sm:has space#f",
        "file:/etc/passwd",
    ],
)
def test_not_references(text):
    with pytest.raises(ValueError, match="reference") as info:
        parse_reference(text)
    scheme, _, rest = text.partition(":")
    typed = rest if scheme in ("env", "keyring", "vault", "aws-sm") else text
    assert not typed or typed not in str(info.value)  # what was typed is never echoed


def test_strategy_secrets_accept_every_kind_and_refuse_a_value(monkeypatch):
    monkeypatch.setenv("DA_MODEL_KEY", VALUE)
    sc = StrategyConfig(
        name="mean-reversion",
        secrets={"api_key": "env:DA_MODEL_KEY", "other": "vault:secret/m#k"},
    )
    assert sc.secrets["other"] == "vault:secret/m#k"
    with pytest.raises(SecretUnavailable, match=r"strategy mean-reversion secret other"):
        resolve_secrets(sc)  # no [secrets.vault]: one sentence naming it
    with pytest.raises(ValidationError, match="never the secret itself") as info:
        StrategyConfig(name="mean-reversion", secrets={"api_key": "sk-live-1234567890"})
    assert "sk-live-1234567890" not in info.value.errors()[0]["msg"]  # what the CLI prints
