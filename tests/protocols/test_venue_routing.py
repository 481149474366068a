"""Swap intents name their venue: routed by (kind, venue), refused in one sentence when the
registry has no such venue or the fields do not fit it; the defaults plan as before."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from defiagent.execution.planner import PlanningError
from defiagent.guard.base import GuardRequest
from defiagent.protocols import registry
from defiagent.strategy.intents import Intent, SwapExactIn, SwapExactOut, Wrap
from tests.guard import world as w
from tests.guard.world import DTKN, DUSD, E18, ROUTER, WETH, plan

INTENT = TypeAdapter(Intent)
ALLOWLIST = w.allowlist()


def args(call):
    req = GuardRequest.build(call, w.context(allowlist=ALLOWLIST))
    assert req.decoded is not None, req.decode_error
    return req.decoded.args


def swap(**kw):
    return SwapExactIn(token_in=DTKN, token_out=WETH, amount_in=E18, min_amount_out=1, **kw)


def test_defaults_are_uniswap_v2_with_the_venue_picking_the_route():
    intent = swap()
    assert (intent.venue, intent.via, intent.fees) == ("uniswap-v2", [], None)
    # The wire form without the new fields parses to the same intent.
    wire = {k: v for k, v in intent.model_dump().items() if k not in ("venue", "via", "fees")}
    assert INTENT.validate_python(wire) == intent
    (call,) = plan(intent, **{DTKN: E18})
    assert call.target == ROUTER
    # No DTKN/WETH pool and no hop through WETH to WETH: the direct path, as before, which
    # the slippage bound then refuses for want of a quote; `via` is how to route it.
    assert args(call)["path"] == (DTKN, WETH)


def test_via_is_the_path_planned_hop_by_hop():
    (call,) = plan(swap(via=[DUSD]), **{DTKN: E18})
    assert args(call)["path"] == (DTKN, DUSD, WETH)
    out = SwapExactOut(token_in=DUSD, token_out=DTKN, amount_out=E18, max_amount_in=E18, via=[WETH])
    (call,) = plan(out, **{DUSD: E18})
    assert args(call)["path"] == (DUSD, WETH, DTKN)


def test_via_that_visits_a_token_twice_is_refused():
    with pytest.raises(PlanningError, match="visits a token twice"):
        plan(swap(via=[DUSD, DTKN]), **{DTKN: E18})
    with pytest.raises(PlanningError, match="visits a token twice"):
        plan(swap(via=[WETH]), **{DTKN: E18})


def test_an_unknown_venue_is_refused_by_name_in_one_sentence():
    with pytest.raises(PlanningError) as err:
        plan(swap(venue="sushiswap"))
    message = err.value.message
    assert message.startswith("venue 'sushiswap' is not a protocol the agent knows")
    assert "uniswap-v2" in message
    assert ". " not in message
    assert "\n" not in message


def test_fee_tiers_on_a_venue_without_them_are_refused():
    with pytest.raises(PlanningError, match="uniswap-v2 has no fee tiers"):
        plan(swap(fees=[3000]))


def test_a_venue_only_routes_the_kinds_it_serves():
    # WETH is a protocol, but not a swap venue: naming it is refused, never re-routed.
    with pytest.raises(PlanningError, match="venue 'weth' is not a protocol"):
        plan(swap(venue="weth"))
    assert registry.route(Wrap(amount=1)).name == "weth"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("venue", "Uniswap V2"),  # not a registry-style name
        ("venue", "x" * 33),
        ("via", [DUSD, WETH, DTKN, ROUTER]),  # more than three hops in between
        ("fees", []),
        ("fees", [2**24]),  # a fee tier is a uint24
        ("fees", [-1]),
    ],
)
def test_the_new_fields_are_bounded_on_the_wire(field, value):
    wire = swap().model_dump() | {field: value}
    with pytest.raises(ValidationError):
        INTENT.validate_python(wire)
