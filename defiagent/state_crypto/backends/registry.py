"""Backend name -> class: a new backend is one module and one line here (and the config enum)."""

from __future__ import annotations

from defiagent.errors import ConfigError
from defiagent.state_crypto.backends.aws_kms import AwsKmsBackend
from defiagent.state_crypto.backends.base import KeyBackend
from defiagent.state_crypto.backends.keyring_kek import KeyringBackend
from defiagent.state_crypto.backends.vault_transit import VaultTransitBackend

BACKENDS: dict[str, type[KeyBackend]] = {
    b.name: b for b in (KeyringBackend, AwsKmsBackend, VaultTransitBackend)
}


def build_backend(name: str, params: dict[str, str]) -> KeyBackend:
    cls = BACKENDS.get(name)
    if cls is None:
        raise ConfigError(
            f"{name!r} is not a state key backend (one of: {', '.join(sorted(BACKENDS))})"
        )
    return cls.from_params(params)
