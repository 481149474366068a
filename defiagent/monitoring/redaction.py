"""Keep secrets out of the audit log and the logs: drop secret-named keys, catch raw keys.

Three layers. Keys named like a secret (private_key, password, mnemonic, api_key, ...) have
their value replaced, whatever it is. A bare 32-byte hex string under a key that is not a
known hash field (tx hash, codehash, topics, ...) is replaced too: it may be a private key.
And any URL inside a string is cut to scheme and host: RPC providers put API keys in the
path or query, and an HTTP library's error text quotes the whole URL.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "[redacted]"

_SECRET_KEY = re.compile(
    r"(private[_-]?key|priv[_-]?key|secret|password|passphrase|passwd|mnemonic|seed[_-]?phrase"
    r"|^seed$|api[_-]?key|access[_-]?key|auth[_-]?token|bearer|credential|keystore[_-]?json"
    r"|otp[_-]?secret|totp)",
    re.IGNORECASE,
)
_HEX32 = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")
_URL = re.compile(r"\b(?:https?|wss?)://[^\s'\"<>()\[\]{},]+", re.IGNORECASE)
# Fields that legitimately hold 32-byte values: hashes, topics, storage words, ids.
_HASH_KEY = re.compile(
    r"(hash|topic|root|slot|codehash|prev|data|word|id$|_id$|nonce|salt|selector|digest|sha256"
    r"|signature|raw|block)",
    re.IGNORECASE,
)


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key))


def redact(value: Any, *, key: str = "") -> Any:
    """A copy of `value` with secrets replaced by "[redacted]"."""
    if key and is_secret_key(key):
        return REDACTED
    if isinstance(value, dict):
        return {str(k): redact(v, key=str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, key=key) for v in value]
    if isinstance(value, str) and _HEX32.match(value) and not _HASH_KEY.search(key or ""):
        return REDACTED
    if isinstance(value, str) and "://" in value:
        return cut_urls(value)
    return value


def cut_urls(text: str) -> str:
    """`text` with every URL in it cut to scheme and host ("/…" where something was cut)."""
    from defiagent.chain.forwarder import redact_url

    return _URL.sub(lambda m: redact_url(m.group(0)), text)
