"""Argument roles: the slippage, price and deadline rules read the arguments a function's
scope declares (min-out, path, deadline...), and refuse a call whose function they concern
but that declares no argument for the role they need, rather than letting it through."""

from __future__ import annotations

import pytest

from defiagent.allowlist.models import AllowedFunction, ArgConstraint, ConstraintKind, Role
from defiagent.execution.models import ExpectedDelta, PlannedCall
from defiagent.guard.base import GuardRequest
from defiagent.guard.calldata import encode_call, parse_signature
from defiagent.guard.rules.deadline_bounded import DeadlineBounded
from defiagent.guard.rules.price_sane import PriceSane
from defiagent.guard.rules.slippage_bound import SlippageBound
from defiagent.strategy.intents import Approve, SwapExactIn, Unwrap, Wrap
from tests.guard import world as w
from tests.guard.world import AGENT, DTKN, DUSD, E18, ROUTER, WETH

V9 = w.addr(0x7010)
V9_SWAP = (
    "swapExactTokensForTokensV9(uint256 amountIn,uint256 floor,address[] route,address to,"
    "uint256 expiry)"
)
V9_BUY = (
    "swapTokensForExactTokensV9(uint256 want,uint256 ceiling,address[] route,address to,"
    "uint256 expiry)"
)
V9_ROLES = {
    "amountIn": "amount-in",
    "floor": "min-out",
    "route": "path",
    "to": "recipient",
    "expiry": "deadline",
}
V9_BUY_ROLES = {
    "want": "amount-out",
    "ceiling": "max-in",
    "route": "path",
    "to": "recipient",
    "expiry": "deadline",
}
AMOUNT = 1_000 * E18
QUOTE = w.market().quote_out([DTKN, DUSD], AMOUNT)

SLIPPAGE, PRICE, DEADLINE = SlippageBound(), PriceSane(), DeadlineBounded()
RULES = (SLIPPAGE, PRICE, DEADLINE)


def function(signature: str, roles: dict[str, str] | None = None) -> AllowedFunction:
    extra = {"roles": roles} if roles is not None else {}
    return AllowedFunction(
        selector=parse_signature(signature).selector,
        signature=signature,
        constraints=[
            ArgConstraint(arg="to", kind=ConstraintKind.EQUALS_SELF),
            ArgConstraint(arg="route", kind=ConstraintKind.IN_TOKEN_ALLOWLIST),
        ],
        **extra,
    )


def context(*functions: AllowedFunction, **overrides):
    v9 = w.entry(V9, "Router V9", Role.ROUTER, list(functions))
    return w.context(allowlist=w.allowlist(v9), **overrides)


def v9_swap(floor: int, *, expiry: int = w.NOW + 600, amount: int = AMOUNT) -> PlannedCall:
    return PlannedCall(
        intent_id="v9",
        intent_kind="swap-exact-in",
        target=V9,
        data=encode_call(V9_SWAP, [amount, floor, [DTKN, DUSD], AGENT, expiry]),
        sender=AGENT,
        expected=[
            ExpectedDelta(token=DTKN, min_delta=-amount),
            ExpectedDelta(token=DUSD, min_delta=floor),
        ],
    )


def verdict(rule, call, ctx):
    v = rule.check(GuardRequest.build(call, ctx), ctx)
    assert v.rule == rule.id
    return v


# --- a function that declares no roles for its unknown argument names ---------------------


@pytest.mark.parametrize(
    ("rule", "missing", "check"),
    [
        (SLIPPAGE, "min-out", "the slippage bound cannot be checked"),
        (PRICE, "path", "cannot be price-checked"),
        (DEADLINE, "deadline", "the deadline bound cannot be checked"),
    ],
    ids=["slippage-bound", "price-sane", "deadline-bounded"],
)
def test_unknown_argument_names_without_roles_are_refused(rule, missing, check):
    ctx = context(function(V9_SWAP))
    call = v9_swap(0, expiry=w.NOW + 10**9)  # no floor, a deadline years ahead
    v = verdict(rule, call, ctx)
    assert v.allowed is False, v.reason
    assert "swapExactTokensForTokensV9" in v.reason
    assert V9 in v.reason
    assert f"declares no {missing} argument" in v.reason
    assert check in v.reason


def test_the_whole_guard_refuses_the_undeclared_function():
    d = w.decide(v9_swap(0, expiry=w.NOW + 10**9), context(function(V9_SWAP)))
    assert d.allowed is False
    assert {"slippage-bound", "price-sane", "deadline-bounded"} <= w.refused_by(d)


def test_a_trade_whose_argument_names_mean_nothing_is_refused_by_its_intent():
    signature = "trade(uint256 x,uint256 y,address[] z,address to,uint256 t)"
    fn = AllowedFunction(selector=parse_signature(signature).selector, signature=signature)
    ctx = context(fn)
    call = PlannedCall(
        intent_id="t",
        intent_kind="swap-exact-in",
        target=V9,
        data=encode_call(signature, [AMOUNT, 0, [DTKN, DUSD], AGENT, w.NOW + 600]),
        sender=AGENT,
    )
    for rule in RULES:
        assert verdict(rule, call, ctx).allowed is False, rule.id


# --- the same function with its roles declared -------------------------------------------


def test_declared_roles_are_read_by_the_three_rules():
    ctx = context(function(V9_SWAP, V9_ROLES))
    call = v9_swap(QUOTE * 995 // 1000)
    for rule in RULES:
        v = verdict(rule, call, ctx)
        assert v.allowed is True, f"{rule.id}: {v.reason}"
    d = w.decide(call, ctx)
    assert d.allowed, d.reason()


def test_a_floor_outside_the_slippage_bound_is_refused():
    ctx = context(function(V9_SWAP, V9_ROLES))
    assert verdict(SLIPPAGE, v9_swap(QUOTE * 995 // 1000), ctx).allowed is True
    v = verdict(SLIPPAGE, v9_swap(QUOTE * 900 // 1000), ctx)
    assert v.allowed is False
    assert "bps below the pool quote" in v.reason
    assert verdict(SLIPPAGE, v9_swap(0), ctx).allowed is False


def test_an_expiry_beyond_the_deadline_bound_is_refused():
    ctx = context(function(V9_SWAP, V9_ROLES))
    floor = QUOTE * 995 // 1000
    assert verdict(DEADLINE, v9_swap(floor, expiry=w.NOW + 1_800), ctx).allowed is True
    far = verdict(DEADLINE, v9_swap(floor, expiry=w.NOW + 3_600), ctx)
    assert far.allowed is False
    assert "3600s ahead" in far.reason
    past = verdict(DEADLINE, v9_swap(floor, expiry=w.NOW - 1), ctx)
    assert past.allowed is False
    assert "already passed" in past.reason


def test_the_declared_route_is_price_checked():
    ctx = context(function(V9_SWAP, V9_ROLES), market=w.market(checks_ok=False))
    v = verdict(PRICE, v9_swap(QUOTE * 995 // 1000), ctx)
    assert v.allowed is False
    assert "900 bps" in v.reason


def test_declared_max_in_is_bounded():
    ctx = context(function(V9_BUY, V9_BUY_ROLES))
    want = 1_000 * E18
    quoted_in = w.market().quote_in([DUSD, DTKN], want)

    def buy(ceiling):
        return PlannedCall(
            intent_id="b",
            intent_kind="swap-exact-out",
            target=V9,
            data=encode_call(V9_BUY, [want, ceiling, [DUSD, DTKN], AGENT, w.NOW + 600]),
            sender=AGENT,
        )

    assert verdict(SLIPPAGE, buy(quoted_in * 1005 // 1000), ctx).allowed is True
    v = verdict(SLIPPAGE, buy(quoted_in * 1200 // 1000), ctx)
    assert v.allowed is False
    assert "bps above the pool quote" in v.reason


def test_declared_roles_are_the_whole_story():
    # A function that declares roles gets none from argument names: declaring min-out and
    # path without a deadline leaves the deadline unchecked, so it is refused.
    roles = {k: v for k, v in V9_ROLES.items() if v != "deadline"}
    ctx = context(function(V9_SWAP, roles))
    call = v9_swap(QUOTE * 995 // 1000)
    assert verdict(SLIPPAGE, call, ctx).allowed is True
    v = verdict(DEADLINE, call, ctx)
    assert v.allowed is False
    assert "declares no deadline argument" in v.reason


# --- calls the rules do not concern --------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(
            lambda: w.plan(Approve(token=DUSD, spender=ROUTER, amount=E18))[0], id="approve"
        ),
        pytest.param(
            lambda: w.plan(
                SwapExactIn(token_in=DTKN, token_out=DUSD, amount_in=E18, min_amount_out=1)
            )[0],
            id="approve-before-a-swap",
        ),
        pytest.param(lambda: w.plan(Wrap(amount=E18 // 10))[0], id="wrap"),
        pytest.param(lambda: w.plan(Unwrap(amount=E18 // 10))[0], id="unwrap"),
    ],
)
def test_calls_the_rules_do_not_concern_pass(call):
    call = call()
    assert call.target in (DUSD, DTKN, WETH)
    ctx = w.context()
    for rule in RULES:
        v = verdict(rule, call, ctx)
        assert v.allowed is True, f"{rule.id}: {v.reason}"


def test_an_approval_with_unconventional_names_before_a_swap_passes():
    # DAI calls approve's arguments usr and wad: no role by convention, and still an
    # approval of a token, not a trade.
    signature = "approve(address usr,uint256 wad)"
    fn = AllowedFunction(selector=parse_signature(signature).selector, signature=signature)
    dai = w.addr(0x7011)
    ctx = w.context(allowlist=w.allowlist(w.entry(dai, "DAI", Role.TOKEN, [fn])))
    call = PlannedCall(
        intent_id="s",
        intent_kind="swap-exact-in",
        target=dai,
        data=encode_call(signature, [ROUTER, E18]),
        sender=AGENT,
        allowed_approvals={f"{dai}:{ROUTER}": E18},
    )
    for rule in RULES:
        v = verdict(rule, call, ctx)
        assert v.allowed is True, f"{rule.id}: {v.reason}"


# --- the built-in scopes declare their roles; entries from before roles derive them --------


def test_built_in_scopes_declare_roles():
    from defiagent.agent import scopes

    swap = scopes.router_functions()[0]
    assert swap.roles == {
        "amountIn": "amount-in",
        "amountOutMin": "min-out",
        "path": "path",
        "to": "recipient",
        "deadline": "deadline",
    }
    assert {f.signature.split("(")[0]: dict(f.roles) for f in scopes.weth_functions()} == {
        "deposit": {},
        "withdraw": {},
        "approve": {"guy": "spender"},
    }


def legacy(al):
    """The same allowlist as entries written before roles existed (no roles in the file)."""
    entries = {}
    for address, e in al.entries.items():
        fns = [
            type(f).model_validate(f.model_dump(mode="json", exclude={"roles"}))
            for f in e.functions
        ]
        entries[address] = e.model_copy(update={"functions": fns})
    return al.model_copy(update={"entries": entries})


def test_entries_from_before_roles_get_them_from_conventions_when_loaded():
    al = legacy(w.allowlist())
    swap = al.entries[ROUTER].functions[0]
    assert swap.roles == {}
    assert swap.arg_roles == {
        "amountIn": "amount-in",
        "amountOutMin": "min-out",
        "path": "path",
        "to": "recipient",
        "deadline": "deadline",
    }


@pytest.mark.parametrize(
    "kind", ["swap-exact-in", "swap-exact-out", "add-liquidity", "remove-liquidity"]
)
def test_uniswap_calls_on_entries_from_before_roles_still_pass(kind):
    from tests.guard.test_rules import LEGIT

    ctx = w.context(allowlist=legacy(w.allowlist()))
    for call in LEGIT[kind]():
        d = w.decide(call, ctx)
        assert d.allowed, f"{call.description}: {d.reason()}"


def test_entries_from_before_roles_are_still_bounded():
    from tests.guard.test_rules import swap

    ctx = w.context(allowlist=legacy(w.allowlist()))
    assert w.refused_by(w.decide(swap(min_out=0), ctx)) == {"slippage-bound"}
