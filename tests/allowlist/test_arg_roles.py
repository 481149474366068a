"""Argument roles in an entry: signed when declared, absent from the hash when not, so entries
approved before roles existed keep their signatures; their roles come from conventions."""

from __future__ import annotations

import pytest

from defiagent.allowlist.functions import function_problems, selector
from defiagent.allowlist.models import (
    AllowedFunction,
    AllowlistEntry,
    ArgConstraint,
    ConstraintKind,
    Role,
)
from defiagent.allowlist.signatures import canonical_json, entry_hash
from defiagent.allowlist.store import load_active_allowlist
from defiagent.allowlist.tomlio import read_entry, read_toml, write_entry
from defiagent.allowlist.workflow import approve_entry
from defiagent.errors import Refused
from tests.allowlist.support import approved_entry

SWAP = (
    "swapExactTokensForTokens(uint256 amountIn,uint256 amountOutMin,address[] path,"
    "address to,uint256 deadline)"
)
APPROVE = "approve(address spender,uint256 amount)"
V9 = "swapV9(uint256 amountIn,uint256 floor,address[] route,address to,uint256 expiry)"
# The hash of `legacy_entry()` as computed before roles existed: reviewers signed this.
LEGACY_HASH = "0x994c0338c24c5fa506e658f24cac28698c42c1bfce550e88ed9fdbd537b8b262"


def legacy_entry(**functions_update) -> AllowlistEntry:
    return AllowlistEntry(
        chain_id=31337,
        address="0x" + "12" * 20,
        name="Legacy router",
        role=Role.ROUTER,
        codehash="0x" + "11" * 32,
        functions=[
            AllowedFunction(
                selector=selector(SWAP),
                signature=SWAP,
                constraints=[
                    ArgConstraint(arg="path", kind=ConstraintKind.IN_TOKEN_ALLOWLIST),
                    ArgConstraint(arg="to", kind=ConstraintKind.EQUALS_SELF),
                ],
                **functions_update,
            ),
            AllowedFunction(
                selector=selector(APPROVE),
                signature=APPROVE,
                constraints=[
                    ArgConstraint(arg="amount", kind=ConstraintKind.MAX_AMOUNT, value="1000")
                ],
            ),
        ],
    )


def test_an_entry_without_roles_hashes_as_before_roles_existed():
    entry = legacy_entry()
    assert b"roles" not in canonical_json(entry)
    assert entry_hash(entry) == LEGACY_HASH
    # Its roles come from the argument names, outside what is signed.
    assert entry.functions[0].arg_roles["amountOutMin"] == "min-out"
    assert entry.functions[1].arg_roles == {"spender": "spender"}


def test_declared_roles_are_part_of_the_signed_hash():
    roles = {"amountIn": "amount-in", "amountOutMin": "min-out", "path": "path"}
    entry = legacy_entry(roles=roles)
    assert b'"roles"' in canonical_json(entry)
    assert entry_hash(entry) != LEGACY_HASH
    other = legacy_entry(roles={**roles, "amountOutMin": "max-in"})
    assert entry_hash(other) != entry_hash(entry)


def test_roles_round_trip_through_toml(tmp_path):
    roles = {"amountIn": "amount-in", "amountOutMin": "min-out", "path": "path"}
    entry = legacy_entry(roles=roles)
    path = tmp_path / "31337" / f"{entry.address}.toml"
    write_entry(path, entry)
    assert read_entry(path) == entry
    assert read_toml(path)["functions"][0]["roles"] == roles
    assert "roles" not in read_toml(path)["functions"][1]


def test_old_entry_on_disk_keeps_verifying_and_gets_its_roles(root, keys):
    path = approved_entry(
        root,
        keys,
        chain_id=31337,
        address="0x" + "34" * 20,
        codehash="0x" + "33" * 32,
        role=Role.ROUTER,
    )
    entry = read_entry(path)
    legacy = legacy_entry().functions
    # Re-sign with the legacy functions, as a reviewer did before roles existed.
    write_entry(path, entry.model_copy(update={"functions": legacy, "approvals": []}))
    for reviewer in keys.reviewers[:2]:
        approve_entry(path, reviewer, root=root)
    assert "roles" not in path.read_text()
    active = load_active_allowlist(root, 31337)
    swap = active.get(entry.address).functions[0]
    assert swap.roles == {}
    assert swap.arg_roles["deadline"] == "deadline"


def test_editing_declared_roles_voids_approvals(root, keys):
    address = "0x" + "56" * 20
    path = approved_entry(root, keys, chain_id=31337, address=address, codehash="0x" + "55" * 32)
    entry = read_entry(path)
    fn = AllowedFunction(
        selector=selector(V9),
        signature=V9,
        roles={"floor": "min-out", "route": "path", "expiry": "deadline", "to": "recipient"},
    )
    write_entry(path, entry.model_copy(update={"functions": [fn], "approvals": []}))
    for reviewer in keys.reviewers[:2]:
        approve_entry(path, reviewer, root=root)
    assert load_active_allowlist(root, 31337).get(address).functions[0].arg_roles == fn.roles
    signed = read_entry(path)
    moved = AllowedFunction(
        selector=fn.selector, signature=V9, roles={**fn.roles, "floor": "max-in"}
    )
    write_entry(path, signed.model_copy(update={"functions": [moved]}))
    with pytest.raises(Refused):
        load_active_allowlist(root, 31337)


@pytest.mark.parametrize(
    ("roles", "problem"),
    [
        ({"nope": "min-out"}, "role on unknown argument 'nope'"),
        ({"route": "min-out"}, "min-out needs"),
        ({"floor": "path"}, "path needs"),
        ({"floor": "min-out", "amountIn": "min-out"}, "declared for both"),
    ],
)
def test_inconsistent_roles_are_reported(roles, problem):
    fn = AllowedFunction(selector=selector(V9), signature=V9, roles=roles)
    problems = function_problems(fn)
    assert any(problem in p for p in problems), problems


def test_consistent_roles_are_not_reported():
    roles = {"amountIn": "amount-in", "floor": "min-out", "route": "path", "to": "recipient"}
    assert (
        function_problems(AllowedFunction(selector=selector(V9), signature=V9, roles=roles)) == []
    )


def test_an_unknown_role_is_a_schema_error():
    with pytest.raises(ValueError, match="roles"):
        AllowedFunction(selector=selector(V9), signature=V9, roles={"floor": "minimum"})


def test_proposed_defaults_declare_roles_under_the_abi_names():
    from defiagent.allowlist.functions import default_functions

    def fn(name, *inputs):
        return {
            "type": "function",
            "name": name,
            "inputs": [{"type": t, "name": n} for t, n in inputs],
        }

    weth_abi = [
        fn("deposit"),
        fn("withdraw", ("uint256", "wad")),
        fn("approve", ("address", "guy"), ("uint256", "wad")),
    ]
    functions, _ = default_functions(Role.WRAPPED_NATIVE, abi=weth_abi, max_approve=10)
    assert {f.signature.split("(")[0]: dict(f.roles) for f in functions} == {
        "deposit": {},
        "withdraw": {},
        "approve": {"guy": "spender"},
    }
    router, _ = default_functions(Role.ROUTER)
    by_name = {f.signature.split("(")[0]: f for f in router}
    assert by_name["swapExactETHForTokens"].roles == {
        "amountOutMin": "min-out",
        "path": "path",
        "to": "recipient",
        "deadline": "deadline",
    }
    assert by_name["removeLiquidity"].roles["liquidity"] == "liquidity"
    assert all(function_problems(f) == [] for f in router + functions)
