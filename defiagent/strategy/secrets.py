"""A strategy's own secrets (a model API key), resolved from their references at start.

The config holds references only (`env:NAME`, `keyring:service/name`); the values live in
memory and reach the strategy in its hello message, never argv, environment, logs or files.
"""

from __future__ import annotations

import os

from defiagent.errors import ConfigError
from defiagent.signing.passwords import KeyringRef, password_from_keyring
from defiagent.strategy.config import StrategyConfig


def resolve_secret(reference: str, *, what: str) -> str:
    scheme, _, rest = reference.partition(":")
    if scheme == "env":
        value = os.environ.get(rest)
        if not value:
            raise ConfigError(f"{what}: the environment variable {rest} is not set")
        return value
    if scheme == "keyring":
        service, _, username = rest.partition("/")
        try:
            return password_from_keyring(KeyringRef(service=service, username=username))
        except ConfigError as exc:
            raise ConfigError(f"{what}: {exc.message}", remedy=exc.remedy) from None
    raise ConfigError(f"{what}: {reference.split(':')[0]!r} is not a secret reference kind")


def resolve_secrets(sc: StrategyConfig) -> dict[str, str]:
    return {
        key: resolve_secret(ref, what=f"strategy {sc.name} secret {key} ({ref})")
        for key, ref in sc.secrets.items()
    }
