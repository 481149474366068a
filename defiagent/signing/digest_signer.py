"""Shared signing flow for backends that sign a 32-byte digest and return (r, s).

The backend supplies `_sign_digest`; this class builds every payload, rebuilds v by
recovery, normalises s, and verifies the result before anyone can use it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from defiagent.signing.base import (
    SignatureMismatch,
    SignedTransaction,
    report_mismatch,
    verify_message_signature,
    verify_signed_transaction,
    verify_typed_data_signature,
)
from defiagent.signing.secp256k1 import find_y_parity, normalize_s
from defiagent.signing.transactions import (
    personal_message_digest,
    prepare_transaction,
    signature_bytes,
    typed_data_hashes,
)


class DigestSigner(ABC):
    backend = "digest"

    @property
    @abstractmethod
    def address(self) -> str: ...

    @abstractmethod
    def _sign_digest(self, digest: bytes) -> tuple[int, int]:
        """(r, s) over `digest`, exactly as the backend returned them."""

    def _signature(self, digest: bytes, kind: str) -> tuple[int, int, int]:
        address = self.address
        r, s = self._sign_digest(digest)
        s = normalize_s(s)  # KMS does not normalise; Ethereum requires low s
        y_parity = find_y_parity(digest, r, s, address)
        if y_parity is None:
            raise report_mismatch(
                SignatureMismatch(
                    f"the {self.backend} signature does not recover to {address} "
                    "with either recovery id (wrong key?)"
                ),
                backend=self.backend,
                kind=kind,
                signer=address,
            )
        return y_parity, r, s

    def sign_transaction(self, tx: dict[str, Any]) -> SignedTransaction:
        unsigned = prepare_transaction(tx)
        y_parity, r, s = self._signature(unsigned.digest, "transaction")
        raw = unsigned.assemble(y_parity, r, s)
        return verify_signed_transaction(raw, self.address, tx, backend=self.backend)

    def sign_message(self, message: bytes) -> bytes:
        y_parity, r, s = self._signature(personal_message_digest(message), "message")
        signature = signature_bytes(y_parity, r, s)
        return verify_message_signature(message, signature, self.address, backend=self.backend)

    def sign_typed_data(self, typed_data: dict[str, Any]) -> bytes:
        digest = typed_data_hashes(typed_data).digest
        y_parity, r, s = self._signature(digest, "typed_data")
        signature = signature_bytes(y_parity, r, s)
        return verify_typed_data_signature(
            typed_data, signature, self.address, backend=self.backend
        )
