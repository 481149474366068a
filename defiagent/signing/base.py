"""The Signer protocol every backend implements, and the checks every signature passes.

A backend only produces signatures; `verify_signed_transaction` and friends recover the
signer from each one before it is used, so a confused or compromised backend cannot make
the agent send a transaction from another account, on another chain, or with other
content. A refused signature is logged on the "defiagent.signing" logger and handed to the
alert hook (by default: one ERROR log line), then raised as `SignatureMismatch`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import rlp
from eth_account import Account
from eth_account.messages import SignableMessage, encode_defunct, encode_typed_data
from eth_account.typed_transactions import TypedTransaction
from eth_utils import keccak
from hexbytes import HexBytes
from pydantic import BaseModel, ConfigDict

from defiagent.errors import Refused
from defiagent.signing.secp256k1 import in_range, is_low_s
from defiagent.signing.transactions import prepare_transaction

log = logging.getLogger("defiagent.signing")


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


# --- alerting -------------------------------------------------------------------------

AlertHook = Callable[[SignatureMismatch, Mapping[str, Any]], None]


def log_alert(error: SignatureMismatch, context: Mapping[str, Any]) -> None:
    """The default alert: one ERROR line; a real deployment plugs its pager in instead."""
    log.error("ALERT signature refused: %s %s", error.message, dict(context))


_alert_hook: AlertHook = log_alert


def set_alert_hook(hook: AlertHook | None) -> AlertHook:
    """Install the alert callback (None restores the default); returns the previous one."""
    global _alert_hook
    previous, _alert_hook = _alert_hook, hook or log_alert
    return previous


def report_mismatch(error: SignatureMismatch, **context: Any) -> SignatureMismatch:
    """Log and alert a refused signature, then hand it back to be raised.

    `context` must hold nothing secret: addresses, backend name, what was being signed.
    """
    log.warning("refused a signature: %s %s", error.message, context)
    try:
        _alert_hook(error, context)
    except Exception:  # a broken pager must not turn a refusal into something else
        log.exception("the signing alert hook failed")
    return error


# --- verification ---------------------------------------------------------------------


def _check_rs(r: int, s: int) -> None:
    if not (in_range(r) and in_range(s)):
        raise SignatureMismatch("the signature's r or s is out of range")
    if not is_low_s(s):
        raise SignatureMismatch("the signature has a high s value (EIP-2 forbids it)")


def _decode_vrs(raw: bytes) -> tuple[int, int, int]:
    if raw and raw[0] <= 0x7F:
        return TypedTransaction.from_bytes(HexBytes(raw)).vrs()
    fields = rlp.decode(raw)
    if not isinstance(fields, list) or len(fields) != 9:
        raise ValueError("a legacy transaction has 9 fields")
    v, r, s = (int.from_bytes(f, "big") for f in fields[6:9])
    return v, r, s


def _verify_transaction(raw: bytes, expected_sender: str, tx: dict[str, Any]) -> SignedTransaction:
    unsigned = prepare_transaction(tx)
    try:
        v, r, s = _decode_vrs(raw)
        sender = Account.recover_transaction(raw)
    except Exception as exc:
        raise SignatureMismatch(f"the signed transaction cannot be decoded: {exc}") from exc
    _check_rs(r, s)
    if sender.lower() != expected_sender.lower():
        raise SignatureMismatch(
            f"the signature recovers to {sender}, not to the signer {expected_sender}"
        )
    if unsigned.tx_type:
        y_parity = v
    else:
        if v in (27, 28):
            raise SignatureMismatch(
                f"the signature has no chain id (replayable anywhere), not chain {unsigned.chain_id}"
            )
        chain_id, y_parity = divmod(v - 35, 2)
        if chain_id != unsigned.chain_id:
            raise SignatureMismatch(
                f"the signature is for chain {chain_id}, not chain {unsigned.chain_id}"
            )
    if y_parity not in (0, 1):
        raise SignatureMismatch(f"the signature's v value {v} is not valid")
    # Rebuild the transaction we asked for with this signature: any other byte (recipient,
    # value, data, fees, nonce, chain) means the backend signed something else.
    if unsigned.assemble(y_parity, r, s) != raw:
        raise SignatureMismatch("the signed transaction is not the transaction that was requested")
    return SignedTransaction(
        raw="0x" + raw.hex(),
        hash="0x" + keccak(raw).hex(),
        sender=sender,
        nonce=unsigned.nonce,
        chain_id=unsigned.chain_id,
    )


def verify_signed_transaction(
    raw: bytes | str, expected_sender: str, tx: dict[str, Any], *, backend: str = "unknown"
) -> SignedTransaction:
    """Recover the sender of a raw signed tx and check it is exactly `tx` from `expected_sender`.

    `tx` is the complete transaction that was given to the signer; the raw transaction must
    be that transaction, byte for byte, with a low-s signature by `expected_sender`.
    """
    raw_bytes = bytes(HexBytes(raw))
    try:
        return _verify_transaction(raw_bytes, expected_sender, tx)
    except SignatureMismatch as exc:
        raise report_mismatch(
            exc, backend=backend, kind="transaction", signer=expected_sender
        ) from exc


def _recover_checked(signable: SignableMessage, signature: bytes, expected: str, what: str) -> None:
    signature = bytes(signature)
    if len(signature) != 65 or signature[64] not in (27, 28):
        raise SignatureMismatch(f"the {what} signature is not 65 bytes ending in v = 27 or 28")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    _check_rs(r, s)
    try:
        recovered = Account.recover_message(signable, signature=signature)
    except Exception as exc:
        raise SignatureMismatch(f"the {what} signature cannot be recovered: {exc}") from exc
    if recovered.lower() != expected.lower():
        raise SignatureMismatch(f"the {what} signature recovers to {recovered}, not {expected}")


def verify_message_signature(
    message: bytes, signature: bytes, expected: str, *, backend: str = "unknown"
) -> bytes:
    """Check an EIP-191 personal_sign signature recovers to `expected`; returns it."""
    try:
        _recover_checked(encode_defunct(primitive=message), signature, expected, "message")
    except SignatureMismatch as exc:
        raise report_mismatch(exc, backend=backend, kind="message", signer=expected) from exc
    return bytes(signature)


def verify_typed_data_signature(
    typed_data: dict[str, Any], signature: bytes, expected: str, *, backend: str = "unknown"
) -> bytes:
    """Check an EIP-712 signature over `typed_data` recovers to `expected`; returns it."""
    try:
        signable = encode_typed_data(full_message=typed_data)
        _recover_checked(signable, signature, expected, "typed-data")
    except SignatureMismatch as exc:
        raise report_mismatch(exc, backend=backend, kind="typed_data", signer=expected) from exc
    return bytes(signature)
