"""The data keys of one state dir and the AEAD that seals its files with them.

AES-256-GCM (`cryptography`), a fresh 96-bit nonce per seal. The associated data binds a
ciphertext to its role (which file, which column) and to the record it belongs to (a journal
key, an audit seq), so a sealed value moved elsewhere, even within the same file, does not
open. A sealed value is text, `dfa-enc1:<key id>:<base64url(nonce + ciphertext)>`, so it fits
a JSON line, a JSON field or a TEXT column alike.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "dfa-enc1:"
DATA_KEY_BYTES = 32
_NONCE_BYTES = 12
_AAD_DOMAIN = b"defiagent state v1\x00"


class UnsealError(Exception):
    """A sealed value that does not open: the reason, never the value."""


def is_sealed(text: str) -> bool:
    return text.startswith(PREFIX)


def new_data_key() -> bytes:
    return os.urandom(DATA_KEY_BYTES)


def new_key_id() -> str:
    return secrets.token_hex(8)


def _aad(role: str, key_id: str, bind: str) -> bytes:
    return _AAD_DOMAIN + b"\x00".join(p.encode() for p in (role, key_id, bind))


def key_check(key: bytes, key_id: str) -> str:
    """A value that tells whether an unwrapped key is the data key `key_id` (whatever the
    backend did with the wrap context): HMAC-SHA256 under the key, never the key."""
    return hmac.new(
        key, b"defiagent state key check\x00" + key_id.encode(), hashlib.sha256
    ).hexdigest()


def sealed_key_id(token: str) -> str | None:
    """The id of the data key a sealed value was made with (None: not a sealed value)."""
    if not is_sealed(token):
        return None
    key_id, sep, _ = token[len(PREFIX) :].partition(":")
    return key_id if sep else None


class StateCipher:
    """The unwrapped data keys of a state dir (in memory only): the current one seals, any
    of them opens what it sealed."""

    def __init__(
        self, keys: dict[str, bytes], current: str, *, source: str, accept_plaintext: bool = False
    ) -> None:
        if current not in keys:
            raise ValueError("the current data key is not among the keys")
        self._keys = dict(keys)
        self._aeads = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.current = current
        self.source = source  # where the key-encryption key is, e.g. "aws-kms:alias/x"
        # Only while `state rekey` encrypts a state dir that was plaintext: never at run time.
        self.accept_plaintext = accept_plaintext

    def __repr__(self) -> str:  # never the keys
        return f"StateCipher({self.source}, current={self.current})"

    @property
    def key_ids(self) -> list[str]:
        return list(self._aeads)

    def export_keys(self) -> dict[str, bytes]:
        """The raw data keys, for `state rekey` to wrap them again (never written clear)."""
        return dict(self._keys)

    def seal(self, role: str, plaintext: bytes, bind: str = "") -> str:
        nonce = os.urandom(_NONCE_BYTES)
        body = self._aeads[self.current].encrypt(nonce, plaintext, _aad(role, self.current, bind))
        return f"{PREFIX}{self.current}:" + base64.urlsafe_b64encode(nonce + body).decode()

    def open(self, role: str, token: str, bind: str = "") -> bytes:
        key_id = sealed_key_id(token)
        if key_id is None:
            raise UnsealError("it is not a sealed value")
        aead = self._aeads.get(key_id)
        if aead is None:
            raise UnsealError(
                f"it was sealed with data key {key_id}, which this state dir does not hold"
            )
        try:
            raw = base64.urlsafe_b64decode(token[len(PREFIX) + len(key_id) + 1 :])
        except (binascii.Error, ValueError):
            raise UnsealError("it is not valid base64") from None
        if len(raw) < _NONCE_BYTES + 16:
            raise UnsealError("it is too short to be a sealed value")
        try:
            return aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _aad(role, key_id, bind))
        except InvalidTag:
            raise UnsealError(
                "its authentication tag does not check (altered, or moved from another record)"
            ) from None

    def seal_text(self, role: str, text: str, bind: str = "") -> str:
        return self.seal(role, text.encode(), bind)

    def open_text(self, role: str, value: str, bind: str = "") -> str:
        """The plaintext of a sealed value; a plaintext value only while migrating."""
        if not is_sealed(value):
            if self.accept_plaintext:
                return value
            raise UnsealError("it is not encrypted, though the state dir is")
        return self.open(role, value, bind).decode()
