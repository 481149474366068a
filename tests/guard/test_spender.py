"""SpenderAllowlisted: an approval may only name a router or a `spender` entry."""

from __future__ import annotations

import pytest

from defiagent.allowlist.models import Role
from defiagent.execution.models import PlannedCall
from defiagent.guard.base import GuardRequest
from defiagent.guard.calldata import encode_call
from defiagent.guard.rules.spender_allowlisted import SpenderAllowlisted
from defiagent.strategy.intents import Approve, SwapExactIn
from tests.guard import world as w
from tests.guard.world import AGENT, DTKN, DUSD, E18, PAIR, ROUTER, STRANGER, WETH, WETH_PAIR

RULE = SpenderAllowlisted()
FACTORY = w.addr(0x7007)
VAULT = w.addr(0x7008)
ORACLE = w.addr(0x7009)


def allowlist(*extra):
    return w.allowlist(
        w.entry(FACTORY, "Factory", Role.FACTORY, []),
        w.entry(VAULT, "Vault", Role.SPENDER, []),
        w.entry(ORACLE, "Oracle", Role.ORACLE, []),
        *extra,
    )


def revoke(al, address):
    gone = al.entries[address].model_copy(update={"revoked": True})
    return al.model_copy(update={"entries": {**al.entries, address: gone}})


def verdict(call, ctx):
    v = RULE.check(GuardRequest.build(call, ctx), ctx)
    assert v.rule == "spender-allowlisted"
    return v


def approve(spender, token=DUSD):
    return w.plan(Approve(token=token, spender=spender, amount=E18))[0]


@pytest.mark.parametrize("spender", [ROUTER, VAULT], ids=["router", "spender-role"])
def test_approval_to_a_pulling_role_passes(spender):
    ctx = w.context(allowlist=allowlist())
    v = verdict(approve(spender), ctx)
    assert v.allowed is True, v.reason
    # And the whole guard lets it through (only this rule cares about the spender's role).
    d = w.decide(approve(spender), ctx)
    assert d.allowed is True, d.reason()


@pytest.mark.parametrize(
    ("spender", "name", "role"),
    [
        (PAIR, "Pair DUSD/DTKN", "pool"),
        (WETH_PAIR, "Pair WETH/DUSD", "pool"),
        (FACTORY, "Factory", "factory"),
        (DTKN, "DTKN", "token"),
        (WETH, "WETH9", "wrapped-native"),
        (ORACLE, "Oracle", "oracle"),
    ],
    ids=["pair", "weth-pair", "factory", "token", "weth", "oracle"],
)
def test_approval_to_a_role_that_does_not_pull_is_refused(spender, name, role):
    ctx = w.context(allowlist=allowlist())
    v = verdict(approve(spender), ctx)
    assert v.allowed is False
    assert name in v.reason
    assert spender in v.reason
    assert f"whose role is {role}" in v.reason
    assert "only router or spender entries may be spenders" in v.reason
    d = w.decide(approve(spender), ctx)
    assert d.allowed is False
    assert w.refused_by(d) == {"spender-allowlisted"}


def test_approval_of_the_lp_token_to_a_pair_is_refused():
    # The LP token is itself an entry (role pool) whose approve names an in-allowlist spender.
    call = approve(WETH_PAIR, token=PAIR)
    ctx = w.context(allowlist=allowlist())
    assert w.refused_by(w.decide(call, ctx)) == {"spender-allowlisted"}
    assert verdict(call, ctx).allowed is False


def test_approval_to_a_revoked_router_is_refused():
    ctx = w.context(allowlist=revoke(allowlist(), ROUTER))
    v = verdict(approve(ROUTER), ctx)
    assert v.allowed is False
    assert ROUTER in v.reason
    assert "not on the active allowlist" in v.reason


def test_approval_to_a_revoked_spender_is_refused_even_without_an_in_allowlist_constraint():
    al = revoke(allowlist(), VAULT)
    bare = [f.model_copy(update={"constraints": []}) for f in al.entries[DUSD].functions]
    al = al.model_copy(
        update={
            "entries": {**al.entries, DUSD: al.entries[DUSD].model_copy(update={"functions": bare})}
        }
    )
    ctx = w.context(allowlist=al)
    v = verdict(approve(VAULT), ctx)
    assert v.allowed is False
    assert "has been revoked" in v.reason
    assert "Vault" in v.reason


def test_approval_to_an_unknown_address_is_refused():
    ctx = w.context(allowlist=allowlist())
    v = verdict(approve(STRANGER), ctx)
    assert v.allowed is False
    assert STRANGER in v.reason
    assert "not on the active allowlist" in v.reason


def with_token_function(signature):
    """The allowlist with DUSD's only function replaced by `signature` (no constraints)."""
    al = allowlist()
    fn = w.scopes.fn(signature)
    token = al.entries[DUSD].model_copy(update={"functions": [fn]})
    return al.model_copy(update={"entries": {**al.entries, DUSD: token}})


def test_approval_with_no_spender_argument_is_refused():
    # An approve-like function that names no address: nothing to judge, so refuse.
    ctx = w.context(allowlist=with_token_function("approve(uint256 amount)"))
    call = PlannedCall(
        intent_id="x",
        intent_kind="approve",
        target=DUSD,
        data=encode_call("approve(uint256 amount)", [E18]),
        sender=AGENT,
    )
    req = GuardRequest.build(call, ctx)
    assert req.decoded is not None  # it decodes: the spender is what is missing
    v = RULE.check(req, ctx)
    assert v.rule == "spender-allowlisted"
    assert v.allowed is False
    assert "cannot find the spender of approve" in v.reason


def test_approval_whose_spender_is_not_an_address_is_refused():
    ctx = w.context(allowlist=with_token_function("approve(bytes32 spender,uint256 amount)"))
    call = PlannedCall(
        intent_id="x",
        intent_kind="approve",
        target=DUSD,
        data=encode_call(
            "approve(bytes32 spender,uint256 amount)", [b"\x70\x01".rjust(32, b"\0"), E18]
        ),
        sender=AGENT,
    )
    v = verdict(call, ctx)
    assert v.allowed is False
    assert "cannot find the spender" in v.reason


def test_undecodable_approval_is_refused():
    # Calldata that does not decode: the guard refuses it (function-in-scope, part of every
    # guard's floor) and this rule says it could not check the spender rather than passing.
    call = approve(ROUTER)
    call = call.model_copy(update={"data": call.data[:-64]})  # the amount word cut off
    ctx = w.context(allowlist=allowlist())
    d = w.decide(call, ctx)
    assert d.allowed is False
    assert "function-in-scope" in w.refused_by(d)
    v = next(v for v in d.verdicts if v.rule == "spender-allowlisted")
    assert v.allowed is True  # by convention (base.unreadable): the floor refuses, once
    assert v.reason.startswith("the spender not checked")


def test_a_call_that_is_not_an_approval_is_not_judged_on_a_spender():
    swap = w.plan(
        SwapExactIn(token_in=DTKN, token_out=DUSD, amount_in=E18, min_amount_out=1),
        **{DTKN: 10**30},
    )[0]
    assert verdict(swap, w.context(allowlist=allowlist())).allowed is True
