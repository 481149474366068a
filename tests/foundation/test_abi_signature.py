"""One signature parser for the allowlist and the guard: same names, types and selectors."""

from __future__ import annotations

import pytest
from eth_utils import function_signature_to_4byte_selector

from defiagent.abi_signature import SignatureError, parse_signature
from defiagent.allowlist import functions


@pytest.mark.parametrize(
    ("signature", "canonical", "names"),
    [
        (
            "approve(address spender,uint256 amount)",
            "approve(address,uint256)",
            ("spender", "amount"),
        ),
        (
            "swapExactTokensForTokens(uint amountIn, uint amountOutMin, address[] calldata path, address to, uint deadline)",
            "swapExactTokensForTokens(uint256,uint256,address[],address,uint256)",
            ("amountIn", "amountOutMin", "path", "to", "deadline"),
        ),
        ("f(byte b, int[2] xs)", "f(bytes1,int256[2])", ("b", "xs")),
        (
            "h((address a,uint256 b)[] orders, bytes data)",
            "h((address,uint256)[],bytes)",
            ("orders", "data"),
        ),
        ("deposit()", "deposit()", ()),
        ("g(address)", "g(address)", ("arg0",)),
    ],
)
def test_canonical_form_names_and_selector(signature, canonical, names):
    parsed = parse_signature(signature)
    assert parsed.canonical == canonical
    assert parsed.names == names
    assert parsed.selector == "0x" + function_signature_to_4byte_selector(canonical).hex()
    # The allowlist reads the same parse: the two can never disagree on a selector.
    name, params = functions.parse_signature(signature)
    assert f"{name}({','.join(t for t, _ in params)})" == canonical


@pytest.mark.parametrize("text", ["approve", "(address a)", "approve(address a"])
def test_not_a_signature(text):
    with pytest.raises(SignatureError):
        parse_signature(text)
