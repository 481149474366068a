"""The signed allowlist -> the guard's on-chain configuration, its encoding, and diffs.

One entry's allowed functions become (target, selector) rules; its argument constraints
become conditions on head words of the calldata, the same ones the off-chain guard reads:

    equals-self          -> recipient-is-safe   (the address argument is the Safe)
    in-allowlist         -> spender-in-set      (an active router or spender entry)
    in-token-allowlist   -> token / token-path  (a token entry, or every element of a path)
    max-amount           -> at-most             (a uint argument, inclusive cap)
    equals               -> equals

Fields of a static struct are head words too, in order (Uniswap V3's exactInputSingle
`params.recipient`). A function with a constraint that cannot be expressed on chain (a
field of a dynamic struct, an argument after a fixed array) gets no rule at all, so the
guard refuses every call to it, and is listed in `left_out`: the rule set is never looser
than the allowlist.
"""

from __future__ import annotations

from enum import IntEnum

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_abi.grammar import parse as abi_type
from eth_utils import keccak, to_checksum_address
from pydantic import BaseModel, ConfigDict

from defiagent.abi_signature import Param, parse_signature
from defiagent.allowlist.models import ActiveAllowlist, ConstraintKind, Role
from defiagent.types import Address

CONFIG_ABI = "(address[],bytes32[],(address,bytes4,bool)[],(uint32,uint8,uint16,uint256)[],address[],address[],address,bytes32)"
_SPENDER_ROLES = (Role.ROUTER, Role.SPENDER)
_TOKEN_ROLES = (Role.TOKEN, Role.WRAPPED_NATIVE)


class ConditionKind(IntEnum):
    RECIPIENT_IS_SAFE = 1
    SPENDER_IN_SET = 2
    AT_MOST = 3
    EQUALS = 4
    TOKEN_PATH = 5
    TOKEN = 6


class Condition(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: ConditionKind
    word: int  # index of the argument's head word
    value: int = 0
    arg: str = ""  # the argument's name, for people (not on chain)


class FunctionRule(BaseModel):
    model_config = ConfigDict(frozen=True)

    target: Address
    selector: str  # 0x + 8 hex
    payable: bool = False
    conditions: tuple[Condition, ...] = ()
    signature: str = ""  # for people (not on chain)


class GuardConfig(BaseModel):
    """What the guard enforces: generated from the allowlist, or read back from the chain."""

    model_config = ConfigDict(frozen=True)

    pins: dict[Address, str]  # target -> extcodehash
    functions: tuple[FunctionRule, ...]
    spenders: tuple[Address, ...]
    tokens: tuple[Address, ...]
    multi_send: Address
    multi_send_codehash: str
    # Allowlisted functions the guard cannot check, so it refuses them (not on chain).
    left_out: tuple[str, ...] = ()

    def encode(self) -> bytes:
        targets = sorted(self.pins)
        functions = sorted(self.functions, key=lambda f: (f.target, f.selector))
        conditions = [
            (i, int(c.kind), c.word, c.value) for i, f in enumerate(functions) for c in f.conditions
        ]
        return abi_encode(
            [CONFIG_ABI],
            [
                (
                    targets,
                    [bytes.fromhex(self.pins[t][2:]) for t in targets],
                    [(f.target, bytes.fromhex(f.selector[2:]), f.payable) for f in functions],
                    conditions,
                    sorted(self.spenders),
                    sorted(self.tokens),
                    self.multi_send,
                    bytes.fromhex(self.multi_send_codehash[2:]),
                )
            ],
        )

    @property
    def config_hash(self) -> str:
        return "0x" + keccak(self.encode()).hex()

    @classmethod
    def decode(cls, data: bytes) -> GuardConfig:
        (raw,) = abi_decode([CONFIG_ABI], data)
        targets, hashes, functions, conditions, spenders, tokens, multi_send, ms_hash = raw
        by_rule: dict[int, list[Condition]] = {}
        for rule, kind, word, value in conditions:
            by_rule.setdefault(rule, []).append(
                Condition(kind=ConditionKind(kind), word=word, value=value)
            )
        return cls(
            pins={
                to_checksum_address(t): "0x" + h.hex() for t, h in zip(targets, hashes, strict=True)
            },
            functions=tuple(
                FunctionRule(
                    target=to_checksum_address(t),
                    selector="0x" + sel.hex(),
                    payable=payable,
                    conditions=tuple(by_rule.get(i, [])),
                )
                for i, (t, sel, payable) in enumerate(functions)
            ),
            spenders=tuple(map(to_checksum_address, spenders)),
            tokens=tuple(map(to_checksum_address, tokens)),
            multi_send=to_checksum_address(multi_send),
            multi_send_codehash="0x" + ms_hash.hex(),
        )


def _head_words(signature: str) -> dict[str, tuple[int, str]]:
    """Argument name -> (head word index, type), for the arguments one word each; fields of
    a static struct by their dotted names ("params.recipient")."""
    out: dict[str, tuple[int, str]] = {}
    word = 0
    for param in parse_signature(signature).params:
        size = _place(param, param.name, word, out)
        if size is None:
            break  # positions after it are not known here: later arguments get no word
        word += size
    return out


def _place(param: Param, name: str, word: int, out: dict[str, tuple[int, str]]) -> int | None:
    """Map `param` (and a static struct's fields) to head words from `word`; the words it
    takes, or None when that is not known here (a fixed array)."""
    if param.components:
        if abi_type(param.type).is_dynamic:
            return 1  # an offset: its fields live in the tail, at no fixed position
        start = word
        for field in param.components:
            size = _place(field, f"{name}.{field.name}", word, out)
            if size is None:
                return None
            word += size
        return word - start
    if param.type.endswith("]") and not param.type.endswith("[]"):
        return None  # a fixed array: one word if dynamic, else one per element
    out[name] = (word, param.type)
    return 1


class _NoOnChainForm(Exception):
    """A constraint the guard contract cannot check."""


def guard_config(
    allowlist: ActiveAllowlist, *, multi_send: str, multi_send_codehash: str
) -> GuardConfig:
    """The rules the guard must hold for this allowlist (active entries only)."""
    active = [e for e in allowlist.entries.values() if not e.revoked]
    pins: dict[str, str] = {}
    functions: list[FunctionRule] = []
    left_out: list[str] = []
    for entry in active:
        if not entry.functions:
            continue  # a pool or factory: reached through a router, never called by the agent
        pins[entry.address] = entry.codehash
        for fn in entry.functions:
            words = _head_words(fn.signature)
            try:
                conditions = [_constrain(words, c.kind, c.value, c.arg) for c in fn.constraints]
            except _NoOnChainForm as why:
                left_out.append(f"{entry.name} ({entry.address}) {fn.signature}: {why}")
                continue
            functions.append(
                FunctionRule(
                    target=entry.address,
                    selector=fn.selector,
                    payable=fn.payable,
                    conditions=tuple(conditions),
                    signature=fn.signature,
                )
            )
    return GuardConfig(
        pins=pins,
        functions=tuple(sorted(functions, key=lambda f: (f.target, f.selector))),
        spenders=tuple(sorted(e.address for e in active if e.role in _SPENDER_ROLES)),
        tokens=tuple(sorted(e.address for e in active if e.role in _TOKEN_ROLES)),
        multi_send=multi_send,
        multi_send_codehash=multi_send_codehash,
        left_out=tuple(left_out),
    )


def _constrain(
    words: dict[str, tuple[int, str]], kind: ConstraintKind, value: str | None, arg: str
) -> Condition:
    if arg not in words:
        raise _NoOnChainForm(
            f"the constraint on {arg!r} cannot be checked on chain (its position in the "
            "calldata is not one head word)"
        )
    word, typ = words[arg]
    return _condition(kind, value, arg, word, typ)


def _condition(kind: ConstraintKind, value: str | None, arg: str, word: int, typ: str) -> Condition:
    if kind == ConstraintKind.EQUALS_SELF:
        return Condition(kind=ConditionKind.RECIPIENT_IS_SAFE, word=word, arg=arg)
    if kind == ConstraintKind.IN_ALLOWLIST:
        return Condition(kind=ConditionKind.SPENDER_IN_SET, word=word, arg=arg)
    if kind == ConstraintKind.IN_TOKEN_ALLOWLIST and typ in ("address", "address[]"):
        array = typ.endswith("[]")
        return Condition(
            kind=ConditionKind.TOKEN_PATH if array else ConditionKind.TOKEN, word=word, arg=arg
        )
    if kind == ConstraintKind.MAX_AMOUNT and value is not None and value.isdigit():
        return Condition(kind=ConditionKind.AT_MOST, word=word, value=int(value), arg=arg)
    if kind == ConstraintKind.EQUALS and value is not None:
        number = int(to_checksum_address(value), 16) if typ == "address" else int(value, 0)
        return Condition(kind=ConditionKind.EQUALS, word=word, value=number, arg=arg)
    raise _NoOnChainForm(f"constraint {kind} on {arg!r} ({typ}) has no on-chain form")


def config_diff(want: GuardConfig, have: GuardConfig | None) -> list[str]:
    """What changes on chain for `have` to become `want`, one line per difference."""
    if have is None:
        return (
            [f"+ target {t} pinned to {h}" for t, h in sorted(want.pins.items())]
            + [f"+ {_fn(f)}" for f in want.functions]
            + [f"+ spender {s}" for s in want.spenders]
            + [f"+ token {t}" for t in want.tokens]
            + [f"+ multiSendCallOnly {want.multi_send}"]
        )
    lines: list[str] = []
    for t in sorted(set(want.pins) | set(have.pins)):
        a, b = have.pins.get(t), want.pins.get(t)
        if a == b:
            continue
        if a is None:
            lines.append(f"+ target {t} pinned to {b}")
        elif b is None:
            lines.append(f"- target {t} (pinned to {a})")
        else:
            lines.append(f"~ target {t} pin {a} -> {b}")
    have_fns = {(f.target, f.selector): f for f in have.functions}
    want_fns = {(f.target, f.selector): f for f in want.functions}
    for key in sorted(set(have_fns) | set(want_fns)):
        a_fn, b_fn = have_fns.get(key), want_fns.get(key)
        if a_fn is not None and b_fn is not None and _same(a_fn, b_fn):
            continue
        if a_fn is not None:
            lines.append(f"- {_fn(a_fn)}")
        if b_fn is not None:
            lines.append(f"+ {_fn(b_fn)}")
    for what, a_set, b_set in (
        ("spender", have.spenders, want.spenders),
        ("token", have.tokens, want.tokens),
    ):
        lines += [f"- {what} {x}" for x in sorted(set(a_set) - set(b_set))]
        lines += [f"+ {what} {x}" for x in sorted(set(b_set) - set(a_set))]
    if (have.multi_send, have.multi_send_codehash) != (want.multi_send, want.multi_send_codehash):
        lines.append(f"~ multiSendCallOnly {have.multi_send} -> {want.multi_send}")
    return lines


def _same(a: FunctionRule, b: FunctionRule) -> bool:
    def key(f: FunctionRule) -> tuple[object, ...]:
        return (f.payable, tuple((c.kind, c.word, c.value) for c in f.conditions))

    return key(a) == key(b)


def _fn(f: FunctionRule) -> str:
    what = f.signature or f.selector
    conds = ", ".join(
        f"{c.arg or f'word {c.word}'} {c.kind.name.lower().replace('_', '-')}"
        + (f" {c.value}" if c.kind in (ConditionKind.AT_MOST, ConditionKind.EQUALS) else "")
        for c in f.conditions
    )
    payable = " payable" if f.payable else ""
    return f"{f.target} {what}{payable}" + (f" [{conds}]" if conds else "")
