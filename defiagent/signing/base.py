"""The Signer protocol every backend implements, and the checks every signature passes.

A backend only produces signatures; `verify_signed_transaction` and friends recover the
signer from each one before it is used, so a confused or compromised backend cannot make
the agent send a transaction from another account or chain.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from hexbytes import HexBytes
from pydantic import BaseModel, ConfigDict

from defiagent.errors import Refused


class SignatureMismatch(Refused):
    """A signature did not recover to the signer's address (or to the right chain)."""


class SignedTransaction(BaseModel):
    model_config = ConfigDict(frozen=True)

    raw: str  # 0x-prefixed raw transaction, ready for eth_sendRawTransaction
    hash: str
    sender: str
    nonce: int
    chain_id: int | None


@runtime_checkable
class Signer(Protocol):
    """Sign without ever exposing a key. Implementations live one per module."""

    @property
    def address(self) -> str: ...

    def sign_transaction(self, tx: dict[str, Any]) -> SignedTransaction:
        """Sign a legacy or typed (EIP-1559) transaction dict; the result is verified."""
        ...

    def sign_message(self, message: bytes) -> bytes:
        """EIP-191 personal_sign signature (65 bytes), verified."""
        ...

    def sign_typed_data(self, typed_data: dict[str, Any]) -> bytes:
        """EIP-712 signature over a full typed-data document, verified."""
        ...


def verify_signed_transaction(raw: bytes | str, expected_sender: str, tx: dict) -> SignedTransaction:
    """Decode a raw signed tx, recover its sender, and compare with what was asked for."""
    raw_bytes = HexBytes(raw)
    try:
        sender = Account.recover_transaction(raw_bytes)
    except Exception as exc:
        raise SignatureMismatch(f"the signed transaction cannot be decoded: {exc}") from exc
    if sender.lower() != expected_sender.lower():
        raise SignatureMismatch(
            f"the signature recovers to {sender}, not to the signer {expected_sender}"
        )
    from eth_account.typed_transactions import TypedTransaction  # local: heavy import

    chain_id: int | None
    if raw_bytes[0] <= 0x7F:
        decoded = TypedTransaction.from_bytes(raw_bytes).as_dict()
        chain_id = decoded.get("chainId")
        nonce = decoded["nonce"]
    else:
        import rlp

        fields = rlp.decode(raw_bytes)
        nonce = int.from_bytes(fields[0], "big")
        v = int.from_bytes(fields[6], "big")
        chain_id = (v - 35) // 2 if v >= 35 else None
    wanted_chain = tx.get("chainId")
    if wanted_chain is not None and chain_id != int(wanted_chain):
        raise SignatureMismatch(f"the signature is for chain {chain_id}, not chain {wanted_chain}")
    if "nonce" in tx and nonce != int(tx["nonce"]):
        raise SignatureMismatch(f"the signed nonce {nonce} is not the requested {tx['nonce']}")
    from eth_utils import keccak

    return SignedTransaction(
        raw="0x" + raw_bytes.hex().removeprefix("0x"),
        hash="0x" + keccak(raw_bytes).hex(),
        sender=sender,
        nonce=nonce,
        chain_id=chain_id,
    )


def verify_message_signature(message: bytes, signature: bytes, expected: str) -> bytes:
    recovered = Account.recover_message(encode_defunct(primitive=message), signature=signature)
    if recovered.lower() != expected.lower():
        raise SignatureMismatch(f"the message signature recovers to {recovered}, not {expected}")
    return bytes(signature)


def verify_typed_data_signature(typed_data: dict, signature: bytes, expected: str) -> bytes:
    recovered = Account.recover_message(encode_typed_data(full_message=typed_data), signature=signature)
    if recovered.lower() != expected.lower():
        raise SignatureMismatch(f"the typed-data signature recovers to {recovered}, not {expected}")
    return bytes(signature)
