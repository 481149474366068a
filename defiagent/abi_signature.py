"""Function signatures with argument names: one parser for the allowlist and the guard.

`swapExactTokensForTokens(uint256 amountIn,address[] path,...)` -> name, canonical types,
argument names, selector. The allowlist computes selectors with it and the guard decodes
calldata with it, so the two can never disagree about what a signature means.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

from eth_utils import keccak


class SignatureError(ValueError):
    """The text is not a function signature."""


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


def _split_top_level(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    depth = 0
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
        raise SignatureError(f"{signature!r} is not a function signature")
    name = signature[:open_at].strip()
    types, names = [], []
    for i, part in enumerate(_split_top_level(signature[open_at + 1 : -1])):
        type_, arg = _split_param(part)
        types.append(type_)
        names.append(arg or f"arg{i}")
    return FunctionSignature(name=name, types=tuple(types), names=tuple(names))


def _normalise_type(type_: str) -> str:
    if type_ == "byte" or type_.startswith("byte["):
        return "bytes1" + type_[4:]
    if type_.startswith("uint") and (len(type_) == 4 or type_[4] == "["):
        return "uint256" + type_[4:]
    if type_.startswith("int") and (len(type_) == 3 or type_[3] == "["):
        return "int256" + type_[3:]
    return type_
