"""The key-encryption key in the OS keyring: 32 random bytes (base64) at service/username,
made on first use. The data keys are wrapped with AES-256-GCM under it."""

from __future__ import annotations

import base64
import binascii
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from defiagent.errors import InfraError
from defiagent.state_crypto.backends.base import KeyBackend, missing_key, wrong_key

_KEK_BYTES = 32


def _aad(context: dict[str, str]) -> bytes:
    return (
        b"defiagent state kek\x00"
        + "\x00".join(f"{k}={context[k]}" for k in sorted(context)).encode()
    )


class KeyringBackend(KeyBackend):
    name = "keyring"

    def __init__(self, service: str = "defiagent", username: str = "state-key") -> None:
        self.service = service
        self.username = username

    @classmethod
    def from_params(cls, params: dict[str, str]) -> KeyringBackend:
        return cls(params.get("service", "defiagent"), params.get("username", "state-key"))

    def reference(self) -> str:
        return f"keyring:{self.service}/{self.username}"

    def _keyring(self) -> Any:
        import keyring

        return keyring

    def _get(self) -> bytes | None:
        from keyring.errors import KeyringError

        try:
            value = self._keyring().get_password(self.service, self.username)
        except KeyringError as exc:
            raise InfraError(
                f"the OS keyring cannot be read for {self.reference()}: {exc}"
            ) from exc
        if value is None:
            return None
        try:
            key = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != _KEK_BYTES:
            raise wrong_key(self.reference(), "the keyring entry is not a 32-byte base64 key")
        return key

    def _create(self) -> bytes:
        from keyring.errors import KeyringError

        key = os.urandom(_KEK_BYTES)
        try:
            self._keyring().set_password(
                self.service, self.username, base64.b64encode(key).decode()
            )
        except KeyringError as exc:
            raise InfraError(f"the OS keyring cannot store {self.reference()}: {exc}") from exc
        return key

    def wrap(self, key: bytes, context: dict[str, str], *, create: bool = False) -> bytes:
        kek = self._get()
        if kek is None:
            if not create:
                raise missing_key(self.reference(), "the keyring has no such entry")
            kek = self._create()
        nonce = os.urandom(12)
        return nonce + AESGCM(kek).encrypt(nonce, key, _aad(context))

    def unwrap(self, wrapped: bytes, context: dict[str, str]) -> bytes:
        kek = self._get()
        if kek is None:
            raise missing_key(self.reference(), "the keyring has no such entry")
        try:
            return AESGCM(kek).decrypt(wrapped[:12], wrapped[12:], _aad(context))
        except (InvalidTag, ValueError):
            raise wrong_key(self.reference(), "it holds another key") from None
