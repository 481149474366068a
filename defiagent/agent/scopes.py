"""The functions (and argument constraints) the agent needs on each kind of contract.

These are what a reviewer approves for Uniswap V2 Router02, its pairs, WETH9 and plain
ERC-20 tokens: exactly the calls the planner makes, each with its constraints and the roles
of its arguments (min-out, path, deadline, recipient, spender...), which the slippage, price
and deadline rules read. The roles are generated from these contracts' argument names
(`defiagent.guard.conventions.conventional_roles`) and signed with the entry.
"""

from __future__ import annotations

from defiagent.abi_signature import parse_signature
from defiagent.allowlist.models import AllowedFunction, ArgConstraint, ConstraintKind
from defiagent.execution import planner
from defiagent.guard.conventions import conventional_roles


def fn(signature: str, *constraints: tuple[str, ConstraintKind], payable: bool = False):
    return AllowedFunction(
        selector=parse_signature(signature).selector,
        signature=signature,
        constraints=[ArgConstraint(arg=a, kind=k) for a, k in constraints],
        payable=payable,
        roles=conventional_roles(signature),
    )


SELF = ConstraintKind.EQUALS_SELF
TOKENS = ConstraintKind.IN_TOKEN_ALLOWLIST
LISTED = ConstraintKind.IN_ALLOWLIST


def router_functions() -> list[AllowedFunction]:
    return [
        fn(planner.SWAP_EXACT_IN, ("to", SELF), ("path", TOKENS)),
        fn(planner.SWAP_EXACT_OUT, ("to", SELF), ("path", TOKENS)),
        fn(planner.ADD_LIQUIDITY, ("to", SELF), ("tokenA", TOKENS), ("tokenB", TOKENS)),
        fn(planner.REMOVE_LIQUIDITY, ("to", SELF), ("tokenA", TOKENS), ("tokenB", TOKENS)),
    ]


def token_functions() -> list[AllowedFunction]:
    return [fn(planner.APPROVE, ("spender", LISTED))]


def weth_functions() -> list[AllowedFunction]:
    return [
        fn(planner.DEPOSIT, payable=True),
        fn(planner.WITHDRAW),
        fn("approve(address guy,uint256 wad)", ("guy", LISTED)),
    ]


def pair_functions() -> list[AllowedFunction]:
    return [fn("approve(address spender,uint256 value)", ("spender", LISTED))]
