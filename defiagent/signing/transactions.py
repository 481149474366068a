"""What gets signed: the exact preimage and digest of a transaction, a message, typed data.

Every backend builds its payload here, and the verifier rebuilds it here, so "what the agent
asked for" and "what the signature covers" are compared byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import rlp
from eth_account._utils.legacy_transactions import (  # no public API for the unsigned form
    encode_transaction,
    serializable_unsigned_transaction_from_dict,
)
from eth_account._utils.transaction_utils import transaction_rpc_to_rlp_structure
from eth_account.messages import encode_typed_data
from eth_account.typed_transactions import TypedTransaction
from eth_utils import is_address, is_checksum_address, keccak, to_checksum_address

from defiagent.errors import Refused

# Legacy (0), access list (1) and EIP-1559 (2) only. Type 4 (EIP-7702) would let one
# signature hand the whole account to a contract; blobs (3) have no use here.
SIGNABLE_TX_TYPES = frozenset({0, 1, 2})
_REQUIRED = ("chainId", "nonce", "gas")


@dataclass(frozen=True)
class UnsignedTransaction:
    """A complete transaction, ready to be signed by any backend."""

    tx: dict[str, Any]
    tx_type: int
    chain_id: int
    nonce: int
    preimage: bytes  # what the signature covers (and what a Ledger is sent)
    digest: bytes  # keccak(preimage)
    _serializable: Any

    def legacy_v(self, y_parity: int) -> int:
        return 35 + 2 * self.chain_id + y_parity

    def assemble(self, y_parity: int, r: int, s: int) -> bytes:
        """The raw signed transaction for a (y_parity, r, s) signature."""
        if y_parity not in (0, 1):
            raise Refused(f"the signature's y-parity {y_parity} is not 0 or 1")
        v = y_parity if self.tx_type else self.legacy_v(y_parity)
        return bytes(encode_transaction(self._serializable, vrs=(v, r, s)))


def _tx_type(tx: dict[str, Any]) -> int:
    if "type" in tx:
        value = tx["type"]
        return int(value, 16) if isinstance(value, str) else int(value)
    if "maxFeePerGas" in tx or "maxPriorityFeePerGas" in tx:
        return 2
    if "accessList" in tx:
        return 1
    return 0


def prepare_transaction(tx: dict[str, Any]) -> UnsignedTransaction:
    """Validate a transaction dict and compute what a signature over it must cover.

    Refuses what must never be signed: no chain id (replayable on every chain), missing
    nonce or gas (a signer never guesses them), and transaction types outside 0, 1, 2.
    """
    missing = [k for k in _REQUIRED if tx.get(k) is None]
    if missing:
        raise Refused(f"the transaction to sign lacks {', '.join(missing)}; nothing was signed")
    tx_type = _tx_type(tx)
    if tx_type not in SIGNABLE_TX_TYPES:
        raise Refused(f"transaction type {tx_type} is not signable by this agent (only 0, 1, 2)")
    chain_id = int(tx["chainId"])
    if chain_id <= 0:
        raise Refused(f"chain id {chain_id} is not valid; nothing was signed")
    clean = {k: v for k, v in tx.items() if k not in ("from", "v", "r", "s", "hash")}
    if tx_type:
        clean["type"] = tx_type
    to = clean.get("to")
    if isinstance(to, str) and to not in ("", "0x"):
        # All-lowercase is fine (no checksum to check); a mixed-case typo is not.
        mixed = to[2:] != to[2:].lower() and to[2:] != to[2:].upper()
        if not is_address(to) or (mixed and not is_checksum_address(to)):
            raise Refused(f"the recipient {to} is not a valid address (bad checksum?)")
        clean["to"] = to_checksum_address(to)
    try:
        serializable = serializable_unsigned_transaction_from_dict(clean)
    except (TypeError, ValueError, AssertionError) as exc:
        raise Refused(f"the transaction to sign is malformed: {exc}") from exc
    if isinstance(serializable, TypedTransaction):
        # Any: every implementation has .dictionary and ._unsigned_transaction_serializer,
        # but eth-account's abstract base (what .transaction is typed as) declares neither.
        inner: Any = serializable.transaction
        fields = transaction_rpc_to_rlp_structure(
            {k: v for k, v in inner.dictionary.items() if k not in ("v", "r", "s")}
        )
        body = rlp.encode(inner._unsigned_transaction_serializer.from_dict(fields))
        preimage = bytes([tx_type]) + body
    else:
        # chainId travels in v with r = s = 0 (EIP-155), which is the signing preimage.
        preimage = rlp.encode(serializable)
    digest = keccak(preimage)
    if digest != bytes(serializable.hash()):  # our preimage must be eth-account's, exactly
        raise Refused("internal error: the transaction preimage does not match its hash")
    return UnsignedTransaction(
        tx=clean,
        tx_type=tx_type,
        chain_id=chain_id,
        nonce=int(tx["nonce"]),
        preimage=preimage,
        digest=digest,
        _serializable=serializable,
    )


def personal_message_digest(message: bytes) -> bytes:
    """EIP-191 version 0x45 (personal_sign)."""
    return keccak(b"\x19Ethereum Signed Message:\n" + str(len(message)).encode() + message)


@dataclass(frozen=True)
class TypedDataHashes:
    domain_separator: bytes
    message_hash: bytes

    @property
    def digest(self) -> bytes:
        return keccak(b"\x19\x01" + self.domain_separator + self.message_hash)


def typed_data_hashes(typed_data: dict[str, Any]) -> TypedDataHashes:
    """EIP-712: the domain separator and hashStruct(message) of a full typed-data document."""
    try:
        signable = encode_typed_data(full_message=typed_data)
    except Exception as exc:  # eth-account raises several types for a bad document
        raise Refused(f"the typed data to sign is malformed: {exc}") from exc
    return TypedDataHashes(bytes(signable.header), bytes(signable.body))


def signature_bytes(y_parity: int, r: int, s: int) -> bytes:
    """r || s || v with v = 27 + parity, the form personal_sign and eth_signTypedData return."""
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([27 + y_parity])
