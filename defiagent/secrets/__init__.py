"""Secret references (`env:`, `keyring:`, `vault:`, `aws-sm:`) resolved into memory only.

See docs/secrets.md. `resolve(ref)` for a value, `configure([secrets])` at start.
"""

from defiagent.secrets.errors import SecretUnavailable
from defiagent.secrets.reference import (
    SCHEMES,
    SecretRef,
    check_reference,
    looks_like_reference,
    parse_reference,
)
from defiagent.secrets.resolver import (
    SecretHandle,
    SecretResolver,
    configure,
    current,
    redact,
    resolve,
)
from defiagent.secrets.settings import SecretsConfig

__all__ = [
    "SCHEMES",
    "SecretHandle",
    "SecretRef",
    "SecretResolver",
    "SecretUnavailable",
    "SecretsConfig",
    "check_reference",
    "configure",
    "current",
    "looks_like_reference",
    "parse_reference",
    "redact",
    "resolve",
]
