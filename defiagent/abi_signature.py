"""Function signatures with argument names: one parser for the allowlist and the guard.

`swapExactTokensForTokens(uint256 amountIn,address[] path,...)` -> name, canonical types,
argument names, selector. The allowlist computes selectors with it and the guard decodes
calldata with it, so the two can never disagree about what a signature means.

Struct (tuple) arguments keep their field names:
`exactInputSingle((address tokenIn,...,address recipient,...) params)` has the argument
`params` and the fields `params.tokenIn` ... `params.recipient`, which constraints and
argument roles name like any argument (`FunctionSignature.fields`). Types are checked and
normalised by eth-abi's own type grammar, the one the calldata is decoded with; only the
names are read here. A signature can also be built from a JSON ABI item
(`signature_from_abi`), whose component names are kept the same way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

from eth_abi.exceptions import ABITypeError, ParseError
from eth_abi.grammar import normalize
from eth_abi.grammar import parse as parse_type
from eth_abi.registry import registry
from eth_utils import keccak

_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_ARRAY_SUFFIX = re.compile(r"((?:\[\d*\])*)")
_KEYWORDS = frozenset({"memory", "calldata", "storage", "indexed", "payable"})


class SignatureError(ValueError):
    """The text is not a function signature."""


@dataclass(frozen=True)
class Param:
    """One argument (or struct field): its name, canonical type and, for a struct, fields."""

    name: str
    type: str  # canonical ABI type, e.g. "(address,uint24)" or "address[]"
    components: tuple[Param, ...] = ()

    @property
    def is_struct(self) -> bool:
        """A struct passed as such (not an array of structs): its fields are addressable."""
        return self.type.startswith("(") and self.type.endswith(")")


@dataclass(frozen=True)
class FunctionSignature:
    name: str
    types: tuple[str, ...]
    names: tuple[str, ...]
    params: tuple[Param, ...] = field(default=(), compare=False)

    @property
    def canonical(self) -> str:
        return f"{self.name}({','.join(self.types)})"

    @cached_property
    def selector(self) -> str:
        return "0x" + keccak(text=self.canonical)[:4].hex()

    @cached_property
    def fields(self) -> dict[str, str]:
        """Every argument a constraint or role can name -> its type.

        The top-level arguments, and the fields of struct arguments as `params.recipient`
        (nested structs as `a.b.c`). Fields of an array of structs have no single value
        and are not listed: a rule can only judge them through the whole argument.
        """
        out: dict[str, str] = {}
        for param in self.params:
            _collect_fields(param, "", out)
        return out

    def flatten(self, values: Sequence[Any]) -> dict[str, Any]:
        """Decoded top-level values -> every field's value, keyed as in `fields`."""
        out: dict[str, Any] = {}
        for param, value in zip(self.params, values, strict=True):
            _flatten_value(param, value, "", out)
        return out


def _collect_fields(param: Param, prefix: str, out: dict[str, str]) -> None:
    name = prefix + param.name
    out[name] = param.type
    if param.is_struct:
        for component in param.components:
            _collect_fields(component, name + ".", out)


def _flatten_value(param: Param, value: Any, prefix: str, out: dict[str, Any]) -> None:
    name = prefix + param.name
    out[name] = value
    if param.is_struct:
        for component, item in zip(param.components, value, strict=True):
            _flatten_value(component, item, name + ".", out)


def _split_top_level(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise SignatureError(f"unbalanced parentheses in {text!r}")
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if depth != 0:
        raise SignatureError(f"unbalanced parentheses in {text!r}")
    parts.append("".join(current))
    stripped = [p.strip() for p in parts]
    if stripped == [""]:
        return []
    if "" in stripped:
        raise SignatureError(f"an empty argument in {text!r}")
    return stripped


def _canonical_type(type_: str) -> str:
    """eth-abi's normal form of a type (uint -> uint256, byte -> bytes1), or an error."""
    try:
        canonical = parse_type(normalize(type_)).to_type_str()
    except (ParseError, ABITypeError) as exc:
        raise SignatureError(f"{type_!r} is not an ABI type: {exc}") from None
    if not registry.has_encoder(canonical):
        raise SignatureError(f"{type_!r} is not an ABI type")
    return canonical


def _parse_params(text: str) -> tuple[Param, ...]:
    return tuple(_parse_param(part, i) for i, part in enumerate(_split_top_level(text)))


def _parse_param(part: str, index: int) -> Param:
    """'(address a,uint256 b)[] xs' -> Param('xs', '(address,uint256)[]', (a, b))."""
    components: tuple[Param, ...] = ()
    if part.startswith("("):
        depth, close = 0, -1
        for i, ch in enumerate(part):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0:
                close = i
                break
        components = _parse_params(part[1:close])
        rest = part[close + 1 :]
        match = _ARRAY_SUFFIX.match(rest)
        suffix = match.group(1) if match else ""
        tail = rest[len(suffix) :]
        if tail and not tail[0].isspace():
            raise SignatureError(f"{part!r} is not a struct argument")
        type_ = _canonical_type(f"({','.join(c.type for c in components)}){suffix}")
    else:
        raw_type, _, tail = part.partition(" ")
        type_ = _canonical_type(raw_type)
    words = [w for w in tail.split() if w not in _KEYWORDS]
    name = words[-1] if words else f"arg{index}"
    if not _IDENTIFIER.fullmatch(name):
        raise SignatureError(f"{name!r} is not an argument name")
    return Param(name=name, type=type_, components=components)


@lru_cache(maxsize=1024)
def parse_signature(signature: str) -> FunctionSignature:
    signature = signature.strip()
    open_at = signature.find("(")
    if open_at <= 0 or not signature.endswith(")"):
        raise SignatureError(f"{signature!r} is not a function signature")
    name = signature[:open_at].strip()
    if not _IDENTIFIER.fullmatch(name):
        raise SignatureError(f"{signature!r} is not a function signature")
    params = _parse_params(signature[open_at + 1 : -1])
    names = [p.name for p in params]
    if len(set(names)) != len(names):
        raise SignatureError(f"{signature!r} names an argument twice")
    return FunctionSignature(
        name=name,
        types=tuple(p.type for p in params),
        names=tuple(names),
        params=params,
    )


def signature_from_abi(item: Mapping[str, Any]) -> str:
    """A JSON ABI function item -> its signature with argument and struct field names."""
    args = [
        f"{_abi_type(inp)} {inp.get('name') or f'arg{i}'}" for i, inp in enumerate(_inputs(item))
    ]
    return f"{item['name']}({','.join(args)})"


def _inputs(item: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    inputs: list[Mapping[str, Any]] = item.get("inputs") or []
    return inputs


def _abi_type(inp: Mapping[str, Any]) -> str:
    typ: str = inp["type"]
    if typ.startswith("tuple"):
        inner = ",".join(
            f"{_abi_type(c)} {c.get('name') or f'arg{i}'}"
            for i, c in enumerate(inp.get("components") or [])
        )
        return f"({inner}){typ[len('tuple') :]}"
    return typ
