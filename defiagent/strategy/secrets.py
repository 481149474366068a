"""A strategy's own secrets (a model API key), resolved from their references at start.

The config holds references only (`env:NAME`, `keyring:service/name`,
`vault:mount/path#field`, `aws-sm:secret-id#field`); the values live in memory
(defiagent.secrets) and reach the strategy in its hello message, never argv, environment,
logs or files. A reference that gives no value is one sentence naming it, exit 3.
"""

from __future__ import annotations

from defiagent import secrets
from defiagent.strategy.config import StrategyConfig


def resolve_secret(reference: str, *, what: str) -> str:
    """The value behind any secret reference, through the process's resolver."""
    return secrets.resolve(reference, what=what)


def resolve_secrets(sc: StrategyConfig) -> dict[str, str]:
    return {
        key: resolve_secret(ref, what=f"strategy {sc.name} secret {key} ({ref})")
        for key, ref in sc.secrets.items()
    }
