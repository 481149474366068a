"""The SwapRouter functions the agent calls, with their struct field names (SwapRouter's
own ABI names them so), and what a reviewer approves on each: the recipient must be the
agent, the tokens allowlisted, no price limit (a partial fill is not what was asked), and
the roles the slippage, price and deadline rules read, addressed as struct fields."""

from __future__ import annotations

from defiagent.abi_signature import parse_signature
from defiagent.allowlist.models import AllowedFunction, ArgConstraint, ArgRole, ConstraintKind

EXACT_INPUT_SINGLE = (
    "exactInputSingle((address tokenIn,address tokenOut,uint24 fee,address recipient,"
    "uint256 deadline,uint256 amountIn,uint256 amountOutMinimum,uint160 sqrtPriceLimitX96) params)"
)
EXACT_INPUT = (
    "exactInput((bytes path,address recipient,uint256 deadline,uint256 amountIn,"
    "uint256 amountOutMinimum) params)"
)
EXACT_OUTPUT_SINGLE = (
    "exactOutputSingle((address tokenIn,address tokenOut,uint24 fee,address recipient,"
    "uint256 deadline,uint256 amountOut,uint256 amountInMaximum,uint160 sqrtPriceLimitX96) params)"
)
EXACT_OUTPUT = (
    "exactOutput((bytes path,address recipient,uint256 deadline,uint256 amountOut,"
    "uint256 amountInMaximum) params)"
)

R = ArgRole
SELF = ConstraintKind.EQUALS_SELF
TOKENS = ConstraintKind.IN_TOKEN_ALLOWLIST


def _fn(signature: str, roles: dict[str, ArgRole], *constraints: ArgConstraint) -> AllowedFunction:
    return AllowedFunction(
        selector=parse_signature(signature).selector,
        signature=signature,
        constraints=[ArgConstraint(arg="params.recipient", kind=SELF), *constraints],
        roles={"params.recipient": R.RECIPIENT, "params.deadline": R.DEADLINE, **roles},
    )


def _single(extra: dict[str, ArgRole]) -> tuple[dict[str, ArgRole], tuple[ArgConstraint, ...]]:
    roles = {"params.tokenIn": R.TOKEN_IN, "params.tokenOut": R.TOKEN_OUT, "params.fee": R.FEE}
    constraints = (
        ArgConstraint(arg="params.tokenIn", kind=TOKENS),
        ArgConstraint(arg="params.tokenOut", kind=TOKENS),
        # 0: no price limit. A limit stops the swap part way, which no intent asks for.
        ArgConstraint(arg="params.sqrtPriceLimitX96", kind=ConstraintKind.EQUALS, value="0"),
    )
    return roles | extra, constraints


def router_functions() -> tuple[AllowedFunction, ...]:
    in_roles, in_constraints = _single(
        {"params.amountIn": R.AMOUNT_IN, "params.amountOutMinimum": R.MIN_OUT}
    )
    out_roles, out_constraints = _single(
        {"params.amountOut": R.AMOUNT_OUT, "params.amountInMaximum": R.MAX_IN}
    )
    path = ArgConstraint(arg="params.path", kind=TOKENS)
    return (
        _fn(EXACT_INPUT_SINGLE, in_roles, *in_constraints),
        _fn(
            EXACT_INPUT,
            {
                "params.path": R.PACKED_PATH,
                "params.amountIn": R.AMOUNT_IN,
                "params.amountOutMinimum": R.MIN_OUT,
            },
            path,
        ),
        _fn(EXACT_OUTPUT_SINGLE, out_roles, *out_constraints),
        _fn(
            EXACT_OUTPUT,
            {
                "params.path": R.PACKED_PATH_REVERSED,
                "params.amountOut": R.AMOUNT_OUT,
                "params.amountInMaximum": R.MAX_IN,
            },
            path,
        ),
    )
