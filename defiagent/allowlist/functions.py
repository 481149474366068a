"""Allowed functions: signatures, selectors, constraint sanity, and defaults per role.

Defaults are a starting point for the reviewer, who edits them in the proposed entry.
Argument names come from the contract's ABI when known (WETH9 calls approve's arguments
`guy` and `wad`), so a constraint always names a real argument. Each default also declares
its arguments' roles (min-out, path, deadline, recipient...: what the slippage, price and
deadline rules read), given by position from the Uniswap V2 / WETH9 / ERC-20 signature, so
they follow the ABI's names too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_utils import keccak

from defiagent import abi_signature
from defiagent.allowlist.models import (
    AllowedFunction,
    ArgConstraint,
    ArgRole,
    ConstraintKind,
    Role,
)
from defiagent.guard.conventions import conventional_roles


def parse_signature(signature: str) -> tuple[str, list[tuple[str, str]]]:
    """'approve(address spender,uint256 amount)' -> ('approve', [('address','spender'), ...])."""
    try:
        parsed = abi_signature.parse_signature(signature)
    except abi_signature.SignatureError as exc:
        raise ValueError(str(exc)) from None
    return parsed.name, list(zip(parsed.types, parsed.names, strict=True))


def canonical(signature: str) -> str:
    name, params = parse_signature(signature)
    return f"{name}({','.join(t for t, _ in params)})"


def selector(signature: str) -> str:
    return "0x" + keccak(text=canonical(signature))[:4].hex()


def function_problems(fn: AllowedFunction) -> list[str]:
    """Why this allowed function is inconsistent (selector vs signature, unknown arguments)."""
    try:
        parsed = abi_signature.parse_signature(fn.signature)
    except abi_signature.SignatureError as exc:
        return [str(exc)]
    problems = []
    if parsed.selector != fn.selector:
        problems.append(f"selector {fn.selector} is not the selector of {parsed.canonical}")
    # Arguments, and struct fields by their dotted names (`params.recipient`).
    types = parsed.fields
    for c in fn.constraints:
        typ = types.get(c.arg)
        if typ is None:
            problems.append(f"{fn.signature}: constraint on unknown argument {c.arg!r}")
            continue
        base = typ.split("[")[0]
        if (
            c.kind in (ConstraintKind.EQUALS_SELF, ConstraintKind.IN_ALLOWLIST)
            and base != "address"
        ):
            problems.append(f"{fn.signature}: {c.kind} needs an address argument, {c.arg} is {typ}")
        if c.kind == ConstraintKind.IN_TOKEN_ALLOWLIST and base != "address" and typ != "bytes":
            # bytes: a packed Uniswap V3 path (token, fee, token...), read as its tokens
            problems.append(
                f"{fn.signature}: {c.kind} needs address, address[] or a packed path (bytes), "
                f"{c.arg} is {typ}"
            )
        if c.kind == ConstraintKind.MAX_AMOUNT:
            if not base.startswith("uint"):
                problems.append(
                    f"{fn.signature}: max-amount needs a uint argument, {c.arg} is {typ}"
                )
            if c.value is None or not c.value.isdigit():
                problems.append(f"{fn.signature}: max-amount on {c.arg} needs a decimal value")
        if c.kind == ConstraintKind.EQUALS and c.value is None:
            problems.append(f"{fn.signature}: equals on {c.arg} needs a value")
    problems += role_problems(fn.signature, fn.roles, types)
    return problems


def role_problems(signature: str, roles: dict[str, ArgRole], types: dict[str, str]) -> list[str]:
    """Declared roles must name real arguments of a fitting type, each role at most once."""
    problems = []
    holder: dict[ArgRole, str] = {}
    for arg, role in roles.items():
        typ = types.get(arg)
        if typ is None:
            problems.append(f"{signature}: role on unknown argument {arg!r}")
            continue
        if not role.fits(typ):
            problems.append(f"{signature}: {role} needs {role.expects} argument, {arg} is {typ}")
        if role in holder:
            problems.append(f"{signature}: {role} is declared for both {holder[role]} and {arg}")
        holder.setdefault(role, arg)
    return problems


def abi_signatures(abi: list[dict[str, Any]]) -> dict[str, str]:
    """selector -> signature with argument (and struct field) names, for every function in an ABI."""
    out = {}
    for item in abi or []:
        if item.get("type") != "function":
            continue
        sig = abi_signature.signature_from_abi(item)
        out[selector(sig)] = sig
    return out


@dataclass(frozen=True)
class _Default:
    signature: str
    constraints: tuple[tuple[int, ConstraintKind], ...] = ()
    payable: bool = False
    max_amount_arg: int | None = None

    def roles(self) -> list[tuple[int, ArgRole]]:
        """(argument position, role): the conventional roles of this default's signature."""
        _, params = parse_signature(self.signature)
        by_name = conventional_roles(self.signature)
        return [(i, by_name[name]) for i, (_, name) in enumerate(params) if name in by_name]


_SWAP = "uint256 amountOutMin,address[] path,address to,uint256 deadline"
_ROUTER = (
    _Default(
        f"swapExactTokensForTokens(uint256 amountIn,{_SWAP})",
        ((2, ConstraintKind.IN_TOKEN_ALLOWLIST), (3, ConstraintKind.EQUALS_SELF)),
    ),
    _Default(
        "swapTokensForExactTokens(uint256 amountOut,uint256 amountInMax,address[] path,address to,uint256 deadline)",
        ((2, ConstraintKind.IN_TOKEN_ALLOWLIST), (3, ConstraintKind.EQUALS_SELF)),
    ),
    _Default(
        f"swapExactETHForTokens({_SWAP})",
        ((1, ConstraintKind.IN_TOKEN_ALLOWLIST), (2, ConstraintKind.EQUALS_SELF)),
        payable=True,
    ),
    _Default(
        f"swapExactTokensForETH(uint256 amountIn,{_SWAP})",
        ((2, ConstraintKind.IN_TOKEN_ALLOWLIST), (3, ConstraintKind.EQUALS_SELF)),
    ),
    # Router02's twins of the three exact-in swaps for fee-on-transfer tokens: the same
    # arguments, constraints and roles as their plain twins (the agent plans the first for
    # tokens whose entry declares transfer_fee_bps).
    _Default(
        f"swapExactTokensForTokensSupportingFeeOnTransferTokens(uint256 amountIn,{_SWAP})",
        ((2, ConstraintKind.IN_TOKEN_ALLOWLIST), (3, ConstraintKind.EQUALS_SELF)),
    ),
    _Default(
        f"swapExactETHForTokensSupportingFeeOnTransferTokens({_SWAP})",
        ((1, ConstraintKind.IN_TOKEN_ALLOWLIST), (2, ConstraintKind.EQUALS_SELF)),
        payable=True,
    ),
    _Default(
        f"swapExactTokensForETHSupportingFeeOnTransferTokens(uint256 amountIn,{_SWAP})",
        ((2, ConstraintKind.IN_TOKEN_ALLOWLIST), (3, ConstraintKind.EQUALS_SELF)),
    ),
    _Default(
        "addLiquidity(address tokenA,address tokenB,uint256 amountADesired,uint256 amountBDesired,"
        "uint256 amountAMin,uint256 amountBMin,address to,uint256 deadline)",
        (
            (0, ConstraintKind.IN_TOKEN_ALLOWLIST),
            (1, ConstraintKind.IN_TOKEN_ALLOWLIST),
            (6, ConstraintKind.EQUALS_SELF),
        ),
    ),
    _Default(
        "removeLiquidity(address tokenA,address tokenB,uint256 liquidity,uint256 amountAMin,"
        "uint256 amountBMin,address to,uint256 deadline)",
        (
            (0, ConstraintKind.IN_TOKEN_ALLOWLIST),
            (1, ConstraintKind.IN_TOKEN_ALLOWLIST),
            (5, ConstraintKind.EQUALS_SELF),
        ),
    ),
)
_APPROVE = _Default(
    "approve(address spender,uint256 amount)",
    ((0, ConstraintKind.IN_ALLOWLIST),),
    max_amount_arg=1,
)
DEFAULTS: dict[Role, tuple[_Default, ...]] = {
    Role.ROUTER: _ROUTER,
    Role.TOKEN: (_APPROVE,),
    Role.WRAPPED_NATIVE: (
        _Default("deposit()", payable=True),
        _Default("withdraw(uint256 wad)"),
        _APPROVE,
    ),
}


def default_functions(
    role: Role, *, abi: list[dict[str, Any]] | None = None, max_approve: int | None = None
) -> tuple[list[AllowedFunction], list[str]]:
    """Default allowed functions for a role, named from the ABI; and notes for the reviewer."""
    known = abi_signatures(abi) if abi else {}
    functions, notes = [], []
    for d in DEFAULTS.get(role, ()):
        sel = selector(d.signature)
        signature = d.signature
        if abi is not None:
            if sel not in known:
                notes.append(f"{canonical(d.signature)} is not in the contract's ABI: left out")
                continue
            signature = known[sel]
        _, params = parse_signature(signature)
        constraints = [ArgConstraint(arg=params[i][1], kind=kind) for i, kind in d.constraints]
        roles = {params[i][1]: role for i, role in d.roles()}
        if d.max_amount_arg is not None:
            cap = max_approve if max_approve is not None else 0
            constraints.append(
                ArgConstraint(
                    arg=params[d.max_amount_arg][1], kind=ConstraintKind.MAX_AMOUNT, value=str(cap)
                )
            )
            if max_approve is None:
                notes.append(f"{canonical(signature)}: set the approval cap (max-amount is 0)")
        functions.append(
            AllowedFunction(
                selector=sel,
                signature=signature,
                constraints=constraints,
                payable=d.payable,
                roles=roles,
            )
        )
    return functions, notes
