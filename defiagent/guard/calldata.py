"""Decode calldata against a function signature with argument names.

Signatures look like `swapExactTokensForTokens(uint256 amountIn,uint256 amountOutMin,
address[] path,address to,uint256 deadline)`. Decoding is strict: the selector must match,
and the data must be exactly the canonical encoding of the decoded values (no trailing
bytes, no dirty padding), so what the guard reads is what the contract will read.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from eth_abi import decode, encode
from eth_utils import to_checksum_address

from defiagent.abi_signature import FunctionSignature, SignatureError, parse_signature


class CalldataError(SignatureError):
    """The calldata does not match the function it claims to call."""


@dataclass(frozen=True)
class DecodedCall:
    function: FunctionSignature
    # name -> value; addresses checksummed, arrays and structs as tuples. A struct's fields
    # are also there by their dotted names (`params.recipient`), as `FunctionSignature.fields`
    # lists them, so constraints and roles on fields read them like any argument.
    args: dict[str, Any]

    def get(self, name: str, default: Any = None) -> Any:
        return self.args.get(name, default)


@lru_cache(maxsize=8192)
def checksum(address: str) -> str:
    return to_checksum_address(address)


def _checksum(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return checksum(value)
    if isinstance(value, list | tuple):
        return tuple(_checksum(v) for v in value)
    return value


def decode_call(signature: str | FunctionSignature, data: str) -> DecodedCall:
    fn = parse_signature(signature) if isinstance(signature, str) else signature
    raw = _bytes(data)
    if len(raw) < 4:
        raise CalldataError("the calldata is shorter than a function selector")
    if "0x" + raw[:4].hex() != fn.selector:
        raise CalldataError(f"the calldata does not call {fn.canonical}")
    try:
        values = decode(list(fn.types), raw[4:])
    except Exception as exc:
        raise CalldataError(f"the arguments do not decode as {fn.canonical}: {exc}") from exc
    if encode(list(fn.types), values) != raw[4:]:
        raise CalldataError(f"the calldata is not the canonical encoding of {fn.canonical}")
    return DecodedCall(function=fn, args=fn.flatten([_checksum(v) for v in values]))


def encode_call(signature: str, args: list[Any]) -> str:
    fn = parse_signature(signature)
    return "0x" + (bytes.fromhex(fn.selector[2:]) + encode(list(fn.types), args)).hex()


def selector_of(data: str) -> str:
    return "0x" + _bytes(data)[:4].hex()


def _bytes(data: str) -> bytes:
    try:
        return bytes.fromhex(data.removeprefix("0x"))
    except ValueError as exc:
        raise CalldataError("the calldata is not hex") from exc
