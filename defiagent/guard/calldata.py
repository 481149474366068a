"""Decode calldata against a function signature with argument names.

Signatures look like `swapExactTokensForTokens(uint256 amountIn,uint256 amountOutMin,
address[] path,address to,uint256 deadline)`. Decoding is strict: the selector must match,
and the data must be exactly the canonical encoding of the decoded values (no trailing
bytes, no dirty padding), so what the guard reads is what the contract will read.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

from eth_abi import decode, encode
from eth_utils import keccak, to_checksum_address


class CalldataError(ValueError):
    """The calldata does not match the function it claims to call."""


@dataclass(frozen=True)
class FunctionSignature:
    name: str
    types: tuple[str, ...]
    names: tuple[str, ...]

    @property
    def canonical(self) -> str:
        return f"{self.name}({','.join(self.types)})"

    @cached_property
    def selector(self) -> str:
        return "0x" + keccak(text=self.canonical)[:4].hex()


@dataclass(frozen=True)
class DecodedCall:
    function: FunctionSignature
    args: dict[str, Any]  # name -> value; addresses checksummed, arrays as tuples

    def get(self, name: str, default: Any = None) -> Any:
        return self.args.get(name, default)


def _split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if current:
        parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def _split_param(part: str) -> tuple[str, str | None]:
    """'(address a,uint256 b)[] xs' -> ('(address,uint256)[]', 'xs'); 'uint x' -> ('uint256', 'x')."""
    part = part.strip()
    if part.startswith("("):
        depth = 0
        for close, ch in enumerate(part):  # noqa: B007 - close is read after the loop
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0:
                break
        inner = ",".join(_split_param(p)[0] for p in _split_top_level(part[1:close]))
        rest = part[close + 1 :]
        suffix = rest.split()[0] if rest and not rest[0].isspace() else ""
        names = rest[len(suffix) :].split()
        type_ = f"({inner}){suffix}"
    else:
        tokens = part.split()
        type_, names = _normalise_type(tokens[0]), tokens[1:]
    names = [n for n in names if n not in ("memory", "calldata", "storage", "indexed", "payable")]
    return type_, (names[-1] if names else None)


@lru_cache(maxsize=1024)
def parse_signature(signature: str) -> FunctionSignature:
    signature = signature.strip()
    open_at = signature.find("(")
    if open_at <= 0 or not signature.endswith(")"):
        raise CalldataError(f"{signature!r} is not a function signature")
    name = signature[:open_at].strip()
    types, names = [], []
    for i, part in enumerate(_split_top_level(signature[open_at + 1 : -1])):
        type_, arg = _split_param(part)
        types.append(type_)
        names.append(arg or f"arg{i}")
    return FunctionSignature(name=name, types=tuple(types), names=tuple(names))


def _normalise_type(type_: str) -> str:
    if type_.startswith("uint") and (len(type_) == 4 or type_[4] == "["):
        return "uint256" + type_[4:]
    if type_.startswith("int") and (len(type_) == 3 or type_[3] == "["):
        return "int256" + type_[3:]
    return type_


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
    return DecodedCall(
        function=fn, args={n: _checksum(v) for n, v in zip(fn.names, values, strict=True)}
    )


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
