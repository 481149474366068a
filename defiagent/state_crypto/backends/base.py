"""What a key-encryption backend is, and how its failures read.

A backend wraps a data key (32 bytes) under a key it holds and never hands out: a key in
the OS keyring, an AWS KMS key, a Vault transit key. `context` is authenticated with the
wrapped key (KMS encryption context, transit associated data, AEAD associated data), so a
wrapped key only unwraps for the data key id it was made for.

Failures, the same for every backend: a key that is there but is not the one the state dir
was wrapped with, or a missing key, is `Refused` (exit 1, never a fresh start); a backend
that cannot be reached is `InfraError` (exit 3); a setting that cannot work (no credentials,
a plain-http remote URL) is `ConfigError` (exit 2).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from defiagent.errors import Refused


class KeyBackend(ABC):
    name: ClassVar[str]

    @classmethod
    @abstractmethod
    def from_params(cls, params: dict[str, str]) -> KeyBackend:
        """Built from the settings saved in the key file (names and references only)."""

    @abstractmethod
    def reference(self) -> str:
        """Where the key-encryption key is, for messages: never a secret."""

    def identity(self) -> str:
        """What names the key-encryption key (a config naming another one needs a rekey)."""
        return self.reference()

    @abstractmethod
    def wrap(self, key: bytes, context: dict[str, str], *, create: bool = False) -> bytes:
        """The data key wrapped; `create` makes the key-encryption key when it is missing
        (only when a state dir is first encrypted or rekeyed, never when one is opened)."""

    @abstractmethod
    def unwrap(self, wrapped: bytes, context: dict[str, str]) -> bytes:
        """The data key, or Refused when this backend's key is not the one that wrapped it."""


def wrong_key(reference: str, why: str) -> Refused:
    return Refused(
        f"the state dir's data key does not unwrap with {reference} ({why}), so its encrypted "
        "files cannot be read and the agent does not start",
        remedy="configure the key the state dir was encrypted with (state-key.json names it); "
        "never delete the encrypted files to start afresh",
    )


def missing_key(reference: str, why: str) -> Refused:
    return Refused(
        f"the key that wraps the state dir's data key is missing: {reference} ({why})",
        remedy="restore that key, or point the config at the backend that holds it",
    )


def require_tls(url: str, what: str) -> None:
    """https for anything remote; plain http only on loopback (the project's TLS rule)."""
    from defiagent.net.tls import check_secure_url

    check_secure_url(url, what=what)
