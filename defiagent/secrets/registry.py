"""Scheme -> source: the one place a new kind of secret reference is added."""

from __future__ import annotations

from defiagent.secrets.aws_sm import AwsSecretsManagerSource
from defiagent.secrets.env import EnvSource
from defiagent.secrets.os_keyring import KeyringSource
from defiagent.secrets.settings import SecretsConfig
from defiagent.secrets.source import SecretSource
from defiagent.secrets.vault import VaultSource


def build_sources(config: SecretsConfig) -> dict[str, SecretSource]:
    sources: list[SecretSource] = [
        EnvSource(),
        KeyringSource(),
        VaultSource(config.vault),
        AwsSecretsManagerSource(config.aws_sm),
    ]
    return {s.scheme: s for s in sources}
