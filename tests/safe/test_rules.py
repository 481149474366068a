"""The allowlist -> guard rules translation: exact, fail-closed, and its diff readable."""

from __future__ import annotations

import pytest
from eth_account import Account

from defiagent.agent import scopes
from defiagent.allowlist.models import (
    ActiveAllowlist,
    AllowedFunction,
    AllowlistEntry,
    ArgConstraint,
    ConstraintKind,
    Role,
)
from defiagent.safe.rules import ConditionKind, GuardConfig, config_diff, guard_config

MS = Account.create().address
H = "0x" + "11" * 32


def _entry(role, functions, name="x"):
    return AllowlistEntry(
        chain_id=1,
        address=Account.create().address,
        name=name,
        role=role,
        codehash=H,
        functions=functions,
    )


def _allowlist(*entries):
    return ActiveAllowlist(chain_id=1, entries={e.address: e for e in entries})


def _want(allowlist):
    return guard_config(allowlist, multi_send=MS, multi_send_codehash=H)


def test_router_and_token_rules_become_conditions_on_head_words():
    router = _entry(Role.ROUTER, scopes.router_functions(), "router")
    token = _entry(Role.TOKEN, scopes.token_functions(), "token")
    pool = _entry(Role.POOL, [], "pool")
    want = _want(_allowlist(router, token, pool))
    assert set(want.pins) == {router.address, token.address}  # a pool is never called
    assert want.spenders == (router.address,)
    assert want.tokens == (token.address,)
    swap = next(f for f in want.functions if f.signature.startswith("swapExactTokensForTokens"))
    kinds = {(c.kind, c.word) for c in swap.conditions}
    assert (ConditionKind.RECIPIENT_IS_SAFE, 3) in kinds
    assert (ConditionKind.TOKEN_PATH, 2) in kinds
    approve = next(f for f in want.functions if f.target == token.address)
    assert [(c.kind, c.word) for c in approve.conditions] == [(ConditionKind.SPENDER_IN_SET, 0)]


def test_encoding_round_trips_and_the_hash_is_order_independent():
    router = _entry(Role.ROUTER, scopes.router_functions())
    token = _entry(Role.TOKEN, scopes.token_functions())
    a = _want(_allowlist(router, token))
    b = _want(_allowlist(token, router))
    assert a.config_hash == b.config_hash
    back = GuardConfig.decode(a.encode())
    assert back.config_hash == a.config_hash
    assert config_diff(a, back) == []


def test_revoked_entries_and_caps_change_the_rules():
    token = _entry(Role.TOKEN, scopes.token_functions())
    capped_fn = AllowedFunction(
        selector="0x095ea7b3",
        signature="approve(address spender,uint256 amount)",
        constraints=[ArgConstraint(arg="amount", kind=ConstraintKind.MAX_AMOUNT, value="5")],
    )
    capped = token.model_copy(update={"functions": [capped_fn]})
    diff = config_diff(_want(_allowlist(capped)), _want(_allowlist(token)))
    assert any("at-most 5" in line for line in diff), diff
    gone = token.model_copy(update={"revoked": True})
    diff = config_diff(_want(_allowlist(gone)), _want(_allowlist(token)))
    assert f"- target {token.address} (pinned to {H})" in diff
    assert f"- token {token.address}" in diff


def test_fields_of_a_static_struct_are_head_words():
    from defiagent.protocols.uniswap_v3.functions import router_functions

    fn = AllowedFunction(
        selector="0x12345678",
        signature="f((uint256 a,uint256 b) pair,address to)",
        constraints=[ArgConstraint(arg="to", kind=ConstraintKind.EQUALS_SELF)],
    )
    (rule,) = _want(_allowlist(_entry(Role.OTHER, [fn]))).functions
    assert [(c.kind, c.word) for c in rule.conditions] == [(ConditionKind.RECIPIENT_IS_SAFE, 2)]
    # Uniswap V3's exactInputSingle: its params struct is static, so every field is checked.
    want = _want(_allowlist(_entry(Role.ROUTER, list(router_functions()), "SwapRouter")))
    single = next(f for f in want.functions if f.signature.startswith("exactInputSingle"))
    assert {(c.kind, c.word) for c in single.conditions} == {
        (ConditionKind.RECIPIENT_IS_SAFE, 3),  # params.recipient
        (ConditionKind.TOKEN, 0),  # params.tokenIn
        (ConditionKind.TOKEN, 1),  # params.tokenOut
        (ConditionKind.EQUALS, 7),  # params.sqrtPriceLimitX96 == 0
    }
    # exactInput's struct holds a bytes path (dynamic): its recipient has no head word, so
    # the guard gets no rule for it and refuses every call; it is said, not dropped.
    assert not any(f.signature.startswith(("exactInput(", "exactOutput(")) for f in want.functions)
    assert len(want.left_out) == 2
    assert all("params.recipient" in line for line in want.left_out)


@pytest.mark.parametrize(
    "signature",
    [
        "f((bytes data,address to) p)",  # a field of a dynamic struct
        "f(uint256[2] xs,address to)",  # after a fixed array: position not known here
    ],
    ids=["dynamic-struct", "after-fixed-array"],
)
def test_a_constraint_the_chain_cannot_check_leaves_the_function_out(signature):
    arg = "p.to" if "p)" in signature else "to"
    fn = AllowedFunction(
        selector="0x12345678",
        signature=signature,
        constraints=[ArgConstraint(arg=arg, kind=ConstraintKind.EQUALS_SELF)],
    )
    entry = _entry(Role.OTHER, [fn], "odd")
    want = _want(_allowlist(entry))
    assert want.functions == ()  # no rule: the guard refuses any call to it
    (line,) = want.left_out
    assert "cannot be checked on chain" in line
    assert entry.address in line
    # Left-out functions are not part of the on-chain configuration or its hash.
    assert GuardConfig.decode(want.encode()).config_hash == want.config_hash


def test_a_token_constraint_on_a_non_address_has_no_on_chain_form():
    fn = AllowedFunction(
        selector="0x12345678",
        signature="f(bytes path)",
        constraints=[ArgConstraint(arg="path", kind=ConstraintKind.IN_TOKEN_ALLOWLIST)],
    )
    want = _want(_allowlist(_entry(Role.OTHER, [fn])))
    assert want.functions == ()
    assert "no on-chain form" in want.left_out[0]
