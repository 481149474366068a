"""Safe transactions: the EIP-712 SafeTx its owners sign, and `execTransaction`.

The owners are the operator's keys (M of N, the Safe's own threshold); their signatures
are collected one by one (a file travels between them, as allowlist approvals do) and
the transaction is sent by anyone once M valid ones are there.
"""

from __future__ import annotations

from typing import Any

from eth_abi import encode as abi_encode
from eth_account.messages import encode_typed_data
from eth_utils import function_signature_to_4byte_selector, keccak, to_checksum_address
from pydantic import BaseModel, ConfigDict

from defiagent.allowlist.signatures import recover_typed, sign_typed, signer_address
from defiagent.errors import Refused
from defiagent.types import Address

CALL, DELEGATECALL = 0, 1
ZERO = "0x0000000000000000000000000000000000000000"
_EXEC = "execTransaction(address,uint256,bytes,uint8,uint256,uint256,uint256,address,address,bytes)"

_TYPES = {
    "EIP712Domain": [
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    "SafeTx": [
        {"name": "to", "type": "address"},
        {"name": "value", "type": "uint256"},
        {"name": "data", "type": "bytes"},
        {"name": "operation", "type": "uint8"},
        {"name": "safeTxGas", "type": "uint256"},
        {"name": "baseGas", "type": "uint256"},
        {"name": "gasPrice", "type": "uint256"},
        {"name": "gasToken", "type": "address"},
        {"name": "refundReceiver", "type": "address"},
        {"name": "nonce", "type": "uint256"},
    ],
}


class OwnerSignature(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    owner: Address
    signature: str  # 0x + 65 bytes, EIP-712 over the SafeTx


class SafeTx(BaseModel):
    """One Safe transaction, without gas refunds (safeTxGas = baseGas = gasPrice = 0)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    chain_id: int
    safe: Address
    to: Address
    value: int = 0
    data: str = "0x"
    operation: int = CALL
    nonce: int

    def typed_data(self) -> dict[str, Any]:
        return {
            "types": _TYPES,
            "primaryType": "SafeTx",
            "domain": {"chainId": self.chain_id, "verifyingContract": self.safe},
            "message": {
                "to": self.to,
                "value": self.value,
                "data": bytes.fromhex(self.data[2:]),
                "operation": self.operation,
                "safeTxGas": 0,
                "baseGas": 0,
                "gasPrice": 0,
                "gasToken": ZERO,
                "refundReceiver": ZERO,
                "nonce": self.nonce,
            },
        }

    @property
    def hash(self) -> str:
        signable = encode_typed_data(full_message=self.typed_data())
        return "0x" + keccak(b"\x19\x01" + signable.header + signable.body).hex()

    def sign(self, owner: Any) -> OwnerSignature:
        """An owner's signature (keystore, Ledger, KMS: anything with sign_typed_data)."""
        return OwnerSignature(
            owner=signer_address(owner), signature=sign_typed(owner, self.typed_data())
        )

    def valid_owners(self, signatures: list[OwnerSignature], owners: list[str]) -> list[str]:
        """The listed owners whose signature over this transaction holds (each once)."""
        allowed = {o.lower() for o in owners}
        typed = self.typed_data()
        valid: list[str] = []
        for s in signatures:
            recovered = recover_typed(typed, s.signature)
            if (
                recovered is not None
                and recovered.lower() == s.owner.lower()
                and recovered.lower() in allowed
                and recovered not in valid
            ):
                valid.append(recovered)
        return valid

    def exec_data(self, signatures: list[OwnerSignature], owners: list[str], threshold: int) -> str:
        """`execTransaction` calldata with `threshold` valid signatures, sorted by owner."""
        valid = {v.lower() for v in self.valid_owners(signatures, owners)}
        if len(valid) < threshold:
            raise Refused(
                f"{len(valid)} valid owner signature(s) on Safe transaction {self.hash}, "
                f"{threshold} required"
            )
        chosen = sorted(
            (s for s in signatures if s.owner.lower() in valid),
            key=lambda s: int(s.owner, 16),
        )
        seen: set[str] = set()
        packed = b""
        for s in chosen:
            if s.owner.lower() in seen or len(seen) == threshold:
                continue
            seen.add(s.owner.lower())
            packed += bytes.fromhex(s.signature[2:])
        args = abi_encode(
            [
                "address",
                "uint256",
                "bytes",
                "uint8",
                "uint256",
                "uint256",
                "uint256",
                "address",
                "address",
                "bytes",
            ],
            [
                self.to,
                self.value,
                bytes.fromhex(self.data[2:]),
                self.operation,
                0,
                0,
                0,
                ZERO,
                ZERO,
                packed,
            ],
        )
        return "0x" + (function_signature_to_4byte_selector(_EXEC) + args).hex()


def call_data(signature: str, types: list[str], values: list[Any]) -> str:
    """0x calldata of `signature` (canonical, e.g. 'enableModule(address)')."""
    return (
        "0x" + (function_signature_to_4byte_selector(signature) + abi_encode(types, values)).hex()
    )


def checksum(address: str) -> str:
    return to_checksum_address(address)
