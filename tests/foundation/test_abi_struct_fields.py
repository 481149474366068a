"""Struct (tuple) arguments keep their field names, so constraints and roles can name them.

Uniswap V3's SwapRouter takes one struct per swap: the recipient, the deadline and the
min-out are fields of `params`. The guard sees them as `params.recipient` etc., in the
allowlist's checks and in decoded calldata alike; signatures without structs read as before.
"""

from __future__ import annotations

import pytest

from defiagent.abi_signature import SignatureError, parse_signature, signature_from_abi
from defiagent.allowlist.functions import abi_signatures, function_problems
from defiagent.allowlist.models import AllowedFunction, ArgConstraint, ArgRole, ConstraintKind
from defiagent.guard.calldata import decode_call, encode_call
from defiagent.protocols.uniswap_v3 import artifacts

EXACT_INPUT_SINGLE = (
    "exactInputSingle((address tokenIn,address tokenOut,uint24 fee,address recipient,"
    "uint256 deadline,uint256 amountIn,uint256 amountOutMinimum,uint160 sqrtPriceLimitX96) params)"
)
A, B, C = "0x" + "11" * 20, "0x" + "22" * 20, "0x" + "33" * 20


def test_struct_fields_are_named_and_typed():
    sig = parse_signature(EXACT_INPUT_SINGLE)
    assert sig.canonical == (
        "exactInputSingle((address,address,uint24,address,uint256,uint256,uint256,uint160))"
    )
    assert sig.selector == "0x414bf389"  # SwapRouter's own selector
    assert sig.names == ("params",)
    assert sig.fields["params.recipient"] == "address"
    assert sig.fields["params.fee"] == "uint24"
    assert sig.fields["params.amountOutMinimum"] == "uint256"


def test_nested_structs_and_arrays_of_structs():
    sig = parse_signature("f((uint256 a,(address who,bytes data) inner) outer, (address x)[] xs)")
    assert sig.types == ("(uint256,(address,bytes))", "(address)[]")
    assert sig.fields["outer.inner.who"] == "address"
    # An array of structs has no single field value: only the whole argument is named.
    assert "xs" in sig.fields
    assert not any(name.startswith("xs.") for name in sig.fields)


def test_decoded_calldata_carries_the_fields():
    params = (A, B, 3000, C, 1_700_000_000, 10**18, 99, 0)
    data = encode_call(EXACT_INPUT_SINGLE, [params])
    call = decode_call(EXACT_INPUT_SINGLE, data)
    assert call.args["params.recipient"] == "0x3333333333333333333333333333333333333333"
    assert call.args["params.amountOutMinimum"] == 99
    assert call.args["params"][3] == call.args["params.recipient"]


def test_signatures_from_the_real_abi_keep_field_names():
    known = abi_signatures(artifacts.swap_router().abi)
    assert known["0x414bf389"] == EXACT_INPUT_SINGLE
    exact_output = next(s for s in known.values() if s.startswith("exactOutput("))
    assert parse_signature(exact_output).fields["params.amountInMaximum"] == "uint256"
    item = {"type": "function", "name": "g", "inputs": [{"type": "address", "name": ""}]}
    assert signature_from_abi(item) == "g(address arg0)"


def _fn(roles=None, constraints=()):
    return AllowedFunction(
        selector=parse_signature(EXACT_INPUT_SINGLE).selector,
        signature=EXACT_INPUT_SINGLE,
        roles=roles or {},
        constraints=[ArgConstraint(arg=a, kind=k) for a, k in constraints],
    )


def test_roles_and_constraints_on_fields_are_checked_like_arguments():
    good = _fn(
        {"params.recipient": ArgRole.RECIPIENT, "params.amountOutMinimum": ArgRole.MIN_OUT},
        [("params.recipient", ConstraintKind.EQUALS_SELF)],
    )
    assert function_problems(good) == []
    assert good.arg_for(ArgRole.MIN_OUT) == "params.amountOutMinimum"
    # The same checks that refuse a bad top-level role refuse a bad field role.
    unknown = function_problems(_fn({"params.nope": ArgRole.MIN_OUT}))
    assert any("unknown argument 'params.nope'" in p for p in unknown)
    wrong_type = function_problems(_fn({"params.recipient": ArgRole.MIN_OUT}))
    assert any("min-out needs a uint argument" in p for p in wrong_type)
    self_on_uint = function_problems(_fn(constraints=[("params.fee", ConstraintKind.EQUALS_SELF)]))
    assert any("needs an address argument" in p for p in self_on_uint)


@pytest.mark.parametrize(
    "text",
    [
        "f(foo x)",  # not an ABI type
        "f(uint7 x)",
        "f((address a,uint256 b x)",  # unbalanced
        "f(address a,)",  # an empty argument
        "f(address a,address a)",  # the same name twice
        "f(address a.b)",  # a name a field path could collide with
    ],
)
def test_what_is_not_a_signature_is_refused(text):
    with pytest.raises(SignatureError):
        parse_signature(text)
