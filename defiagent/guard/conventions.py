"""Argument-name conventions, and the argument roles the guard's argument rules read.

Allowlist entries carry explicit ArgConstraints; the name conventions are the floor beneath
them, so a reviewer who forgets a constraint does not open a hole: an argument named like
a recipient must be the agent, one named like a spender must be allowlisted, one named
like a token must be an allowlisted token.

The slippage, price and deadline rules do not read names: they read the roles an allowed
function declares in its scope (`AllowedFunction.roles`: min-out, path, deadline...), and
refuse a call they concern whose function declares no argument for a role they need. The
names below give roles only where the built-in Uniswap V2 / WETH / ERC-20 scopes are
generated (`conventional_roles`), and to functions of entries signed before roles existed,
once, when they are loaded; never at decision time.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from defiagent.abi_signature import SignatureError, parse_signature
from defiagent.allowlist.models import ArgRole, Role
from defiagent.guard.calldata import DecodedCall
from defiagent.guard.packed_path import PathError, swap_order

if TYPE_CHECKING:
    from defiagent.guard.base import GuardRequest

RECIPIENT_ARGS = frozenset(
    {"to", "recipient", "receiver", "dst", "onBehalfOf", "beneficiary", "_to", "_recipient"}
)
SPENDER_ARGS = frozenset({"spender", "guy", "operator", "_spender", "delegatee"})
TOKEN_ARGS = frozenset(
    {"path", "token", "tokenA", "tokenB", "tokenIn", "tokenOut", "asset", "tokens"}
)
APPROVAL_FUNCTIONS = frozenset({"approve", "increaseAllowance", "increaseApproval"})
ALL_OR_NOTHING_APPROVALS = frozenset({"setApprovalForAll"})
UNLIMITED = 2**255  # anything this large is an "infinite" approval in practice

# The argument names each role has in Uniswap V2 Router02, WETH9 and ERC-20 (and the
# recipient and spender names above): how their scopes' roles are generated.
ROLE_ARGS: dict[ArgRole, frozenset[str]] = {
    ArgRole.RECIPIENT: RECIPIENT_ARGS,
    ArgRole.SPENDER: SPENDER_ARGS,
    ArgRole.DEADLINE: frozenset({"deadline"}),
    ArgRole.AMOUNT_IN: frozenset({"amountIn"}),
    ArgRole.AMOUNT_OUT: frozenset({"amountOut"}),
    ArgRole.MIN_OUT: frozenset({"amountOutMin"}),
    ArgRole.MAX_IN: frozenset({"amountInMax"}),
    ArgRole.PATH: frozenset({"path"}),
    ArgRole.TOKEN_IN: frozenset({"tokenIn"}),
    ArgRole.TOKEN_OUT: frozenset({"tokenOut"}),
    ArgRole.TOKEN_A: frozenset({"tokenA"}),
    ArgRole.TOKEN_B: frozenset({"tokenB"}),
    ArgRole.AMOUNT_A_DESIRED: frozenset({"amountADesired"}),
    ArgRole.AMOUNT_B_DESIRED: frozenset({"amountBDesired"}),
    ArgRole.AMOUNT_A_MIN: frozenset({"amountAMin"}),
    ArgRole.AMOUNT_B_MIN: frozenset({"amountBMin"}),
    ArgRole.LIQUIDITY: frozenset({"liquidity"}),
}

# Roles that make a function a trade (a swap or a liquidity change) for the argument rules.
TRADE_ROLES = frozenset(ArgRole) - {ArgRole.RECIPIENT, ArgRole.SPENDER, ArgRole.DEADLINE}
LIQUIDITY_ROLES = frozenset(
    {
        ArgRole.TOKEN_A,
        ArgRole.TOKEN_B,
        ArgRole.AMOUNT_A_DESIRED,
        ArgRole.AMOUNT_B_DESIRED,
        ArgRole.AMOUNT_A_MIN,
        ArgRole.AMOUNT_B_MIN,
        ArgRole.LIQUIDITY,
    }
)
TRADE_INTENTS = frozenset({"swap-exact-in", "swap-exact-out", "add-liquidity", "remove-liquidity"})
LIQUIDITY_INTENTS = frozenset({"add-liquidity", "remove-liquidity"})
ASSET_ROLES = frozenset({Role.TOKEN, Role.WRAPPED_NATIVE})


def conventional_roles(signature: str) -> dict[str, ArgRole]:
    """The roles a signature's argument names have by convention (argument -> role).

    Only arguments of a fitting type get a role, and each role goes to one argument at
    most (the first). A signature that does not parse has none.
    """
    return dict(_conventional_roles(signature))


@lru_cache(maxsize=1024)
def _conventional_roles(signature: str) -> tuple[tuple[str, ArgRole], ...]:
    try:
        parsed = parse_signature(signature)
    except SignatureError:
        return ()
    out: dict[str, ArgRole] = {}
    for type_, name in zip(parsed.types, parsed.names, strict=True):
        for role, names in ROLE_ARGS.items():
            if name in names and role.fits(type_) and role not in out.values():
                out[name] = role
                break
    return tuple(out.items())


@dataclass(frozen=True)
class RoleArgs:
    """A decoded call's arguments by the role its function's scope gives them."""

    names: dict[ArgRole, str]
    values: dict[ArgRole, Any]

    @classmethod
    def of(cls, req: GuardRequest) -> RoleArgs:
        args = req.decoded.args if req.decoded is not None else {}
        roles = req.function.arg_roles if req.function is not None else {}
        names = {role: arg for arg, role in roles.items() if arg in args}
        return cls(names=names, values={role: args[arg] for role, arg in names.items()})

    def __contains__(self, role: ArgRole) -> bool:
        return role in self.values

    def __getitem__(self, role: ArgRole) -> Any:
        return self.values[role]

    def name(self, role: ArgRole) -> str:
        return self.names[role]


@dataclass(frozen=True)
class SwapRoute:
    """The tokens a swap goes through (first sold, last bought) and, where the function
    declares them (Uniswap V3), the fee tier of each hop, which picks each hop's pool."""

    tokens: tuple[str, ...]
    fees: tuple[int, ...] | None = None

    @property
    def hops(self) -> list[tuple[str, str, int | None]]:
        fees: list[int | None] = list(self.fees) if self.fees else [None] * (len(self.tokens) - 1)
        return [(a, b, f) for (a, b), f in zip(itertools.pairwise(self.tokens), fees, strict=True)]


class RouteError(ValueError):
    """The call's path argument cannot be read as a route (say why in the refusal)."""


def swap_route(a: RoleArgs) -> SwapRoute | None:
    """The route a swap's declared roles give: path (address[]), packed-path (bytes in
    swap order), packed-path-reversed (bytes, bought first), or token-in and token-out with
    an optional fee. None when none is declared; RouteError when a packed path is not one."""
    if ArgRole.PATH in a:
        return SwapRoute(tokens=tuple(a[ArgRole.PATH]))
    for role in (ArgRole.PACKED_PATH, ArgRole.PACKED_PATH_REVERSED):
        if role in a:
            try:
                tokens, fees = swap_order(
                    bytes(a[role]), reversed_=role is ArgRole.PACKED_PATH_REVERSED
                )
            except PathError as exc:
                raise RouteError(f"{a.name(role)} is not a swap path: {exc}") from None
            return SwapRoute(tokens=tuple(tokens), fees=tuple(fees))
    if ArgRole.TOKEN_IN in a and ArgRole.TOKEN_OUT in a:
        fee = (a[ArgRole.FEE],) if ArgRole.FEE in a else None
        return SwapRoute(tokens=(a[ArgRole.TOKEN_IN], a[ArgRole.TOKEN_OUT]), fees=fee)
    return None


def is_trade(req: GuardRequest) -> bool:
    """Whether the slippage, price and deadline rules judge this call as a trade.

    A trade is a call whose function declares a trade role (amount-in, amount-out,
    min-out, max-in, path, token-in/out, token-a/b, liquidity and the liquidity amounts),
    or a call carrying a swap or liquidity intent that is neither the approval planned
    before it (its function declares a spender) nor a call to a token or WETH entry.
    """
    roles = set(req.function.arg_roles.values()) if req.function is not None else set()
    if roles & TRADE_ROLES:
        return True
    if req.call.intent_kind not in TRADE_INTENTS or ArgRole.SPENDER in roles:
        return False
    return req.entry is None or req.entry.role not in ASSET_ROLES


def is_liquidity_change(req: GuardRequest, args: RoleArgs) -> bool:
    return req.call.intent_kind in LIQUIDITY_INTENTS or any(r in args for r in LIQUIDITY_ROLES)


def undeclared(req: GuardRequest, role: str, consequence: str, alternatives: str = "") -> str:
    """The refusal of a call whose function declares no argument for a role a rule needs."""
    name = req.decoded.function.name if req.decoded is not None else "the function"
    nor = f" (nor {alternatives})" if alternatives else ""
    return f"{name} on {req.call.target} declares no {role} argument{nor}, so {consequence}"


def addresses(value: Any) -> Iterator[str]:
    """Every address in an argument value (a single address or an array of them)."""
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        yield value
    elif isinstance(value, tuple | list):
        for item in value:
            yield from addresses(item)


def leaf(name: str) -> str:
    """A struct field's own name (`params.recipient` -> `recipient`): what the name
    conventions read, so a recipient or token inside a struct is judged like one outside."""
    return name.rsplit(".", 1)[-1]


def token_addresses(decoded: DecodedCall, name: str) -> Iterator[str]:
    """The tokens an argument names: an address, an address[], or a packed swap path
    (bytes: token, fee, token...), which raises PathError when it is not one."""
    value = decoded.args[name]
    if decoded.function.fields.get(name) == "bytes":
        tokens, _ = swap_order(bytes(value), reversed_=False)
        yield from tokens
    else:
        yield from addresses(value)


def address_args(decoded: DecodedCall) -> Iterator[tuple[str, str]]:
    for name, value in decoded.args.items():
        for address in addresses(value):
            yield name, address


def approval_amount(decoded: DecodedCall) -> int | None:
    """The amount an approve-like call grants (its first uint argument)."""
    for type_, name in zip(decoded.function.types, decoded.function.names, strict=True):
        if type_.startswith("uint") and "[" not in type_:
            return int(decoded.args[name])
    return None


def approval_spender(decoded: DecodedCall) -> str | None:
    for name in decoded.function.names:
        if name in SPENDER_ARGS:
            spender: str = decoded.args[name]  # an address argument decodes to a str
            return spender
    for type_, name in zip(decoded.function.types, decoded.function.names, strict=True):
        if type_ == "address":
            address: str = decoded.args[name]
            return address
    return None


def short(address: str) -> str:
    return f"{address[:6]}…{address[-4:]}" if len(address) == 42 else address
