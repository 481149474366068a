"""Keystore signer: a Web3 Secret Storage (V3, scrypt) file, for development and tests only.

Unlike Ledger and KMS, the key is decrypted into this process's memory; use it where a
stolen key costs nothing. Files are written 0600, and a file open to group or others is
refused before it is read.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from defiagent.errors import ConfigError, Refused
from defiagent.signing.base import (
    SignatureMismatch,
    SignedTransaction,
    report_mismatch,
    verify_message_signature,
    verify_signed_transaction,
    verify_typed_data_signature,
)
from defiagent.signing.transactions import prepare_transaction

SCRYPT_N = 262144  # the Web3 Secret Storage standard work factor
LIGHT_SCRYPT_N = 4096  # geth's --lightkdf: fast, weak; for throwaway test keys


def check_private_file(path: Path) -> None:
    """Refuse a secret file that is not ours alone (the way ssh refuses a loose key)."""
    try:
        info = path.stat()
    except FileNotFoundError as exc:
        raise ConfigError(f"the keystore file {path} does not exist") from exc
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"the keystore path {path} is not a regular file")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"the keystore file {path} is readable by group or others (mode {mode:04o})",
            remedy=f"run: chmod 600 {path}",
        )
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise ConfigError(f"the keystore file {path} belongs to another user")


def write_keystore(path: Path, private_key: bytes, password: str, *, light: bool = False) -> str:
    """Encrypt `private_key` to a new V3 scrypt file at `path` (mode 0600); returns the address."""
    if len(private_key) != 32:
        raise ConfigError("a private key is 32 bytes (64 hex digits)")
    try:
        account: LocalAccount = Account.from_key(private_key)
    except Exception as exc:  # eth-keys' ValidationError, ValueError: not a usable key
        raise ConfigError("the private key is not a valid secp256k1 key") from exc
    if path.exists():  # checked early to skip the slow KDF; O_EXCL below is the real guard
        raise ConfigError(f"{path} already exists; refusing to overwrite a keystore")
    document = Account.encrypt(
        private_key, password, kdf="scrypt", iterations=LIGHT_SCRYPT_N if light else SCRYPT_N
    )
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        # O_EXCL: never overwrite a key; 0600 from the first byte, no chmod window.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise ConfigError(f"{path} already exists; refusing to overwrite a keystore") from exc
    with os.fdopen(fd, "w") as handle:
        json.dump(document, handle)
    return account.address


def read_keystore_address(path: Path) -> str:
    document = _load(path)
    return to_checksum_address(document["address"])


def _load(path: Path) -> dict[str, Any]:
    check_private_file(path)
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"the keystore file {path} cannot be read as JSON") from exc
    if not isinstance(document, dict) or document.get("version") != 3 or "crypto" not in document:
        raise ConfigError(f"{path} is not a Web3 Secret Storage (version 3) file")
    if "address" not in document:
        raise ConfigError(f"the keystore file {path} has no address field")
    return document


class KeystoreSigner:
    backend = "keystore"

    def __init__(
        self, path: Path | str, password: str, *, expected_address: str | None = None
    ) -> None:
        self.path = Path(path)
        document = _load(self.path)
        try:
            key = Account.decrypt(document, password)
        except ValueError as exc:
            raise ConfigError(f"the password for {self.path} is wrong") from exc
        self._account: LocalAccount = Account.from_key(key)
        del key
        stated = to_checksum_address(document["address"])
        if self._account.address != stated:
            # A file whose key and address disagree was edited or swapped.
            raise report_mismatch(
                SignatureMismatch(
                    f"the keystore {self.path} says {stated} but its key is {self._account.address}"
                ),
                backend=self.backend,
                kind="address",
            )
        if expected_address and self._account.address != to_checksum_address(expected_address):
            raise report_mismatch(
                SignatureMismatch(
                    f"the keystore {self.path} holds {self._account.address}, "
                    f"not the configured {to_checksum_address(expected_address)}"
                ),
                backend=self.backend,
                kind="address",
            )

    def __repr__(self) -> str:
        return f"KeystoreSigner(path={str(self.path)!r}, address={self.address})"

    @property
    def address(self) -> str:
        return self._account.address

    def sign_transaction(self, tx: dict[str, Any]) -> SignedTransaction:
        unsigned = prepare_transaction(tx)  # refuses what must not be signed
        try:
            signed = self._account.sign_transaction(unsigned.tx)
        except (TypeError, ValueError) as exc:
            raise Refused(f"the transaction cannot be signed: {exc}") from exc
        return verify_signed_transaction(
            bytes(signed.raw_transaction), self.address, tx, backend=self.backend
        )

    def sign_message(self, message: bytes) -> bytes:
        signed = self._account.sign_message(encode_defunct(primitive=message))
        return verify_message_signature(
            message, bytes(signed.signature), self.address, backend=self.backend
        )

    def sign_typed_data(self, typed_data: dict[str, Any]) -> bytes:
        try:
            signable = encode_typed_data(full_message=typed_data)
        except Exception as exc:
            raise Refused(f"the typed data to sign is malformed: {exc}") from exc
        signed = self._account.sign_message(signable)
        return verify_typed_data_signature(
            typed_data, bytes(signed.signature), self.address, backend=self.backend
        )
