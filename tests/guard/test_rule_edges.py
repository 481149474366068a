"""Each guard rule at the exact edge of its limits, on both sides, and in every branch.

test_rules.py shows that each attack is refused; these tests pin where each limit sits
(the value at the cap passes, one unit above is refused), that legitimate values pass for
every constraint type, and that what a rule cannot judge is refused with its reason.
`make mutation` measures how well they pin the rules (scripts/mutation.py).
"""

from __future__ import annotations

import dataclasses

import pytest

from defiagent.allowlist.models import (
    AllowedFunction,
    ArgConstraint,
    ConstraintKind,
    Role,
)
from defiagent.decisions import Verdict
from defiagent.execution.models import ExpectedDelta, PlannedCall
from defiagent.guard.base import FeeQuote, GuardContext, GuardRequest, Rule
from defiagent.guard.calldata import encode_call, parse_signature
from defiagent.guard.rules.approval_bounded import ApprovalBounded, ApprovalBoundedConfig
from defiagent.guard.rules.argument_equals import ArgumentEquals
from defiagent.guard.rules.chain_matches import ChainMatches
from defiagent.guard.rules.codehash_pinned import CodehashPinned
from defiagent.guard.rules.deadline_bounded import DeadlineBounded, DeadlineConfig
from defiagent.guard.rules.fee_cap import FeeCap, FeeCapConfig
from defiagent.guard.rules.function_in_scope import FunctionInScope
from defiagent.guard.rules.intent_kind_allowed import IntentKindAllowed, IntentKindConfig
from defiagent.guard.rules.kill_switch_off import KillSwitchOff
from defiagent.guard.rules.price_sane import PriceSane
from defiagent.guard.rules.recipient_is_self import RecipientIsSelf
from defiagent.guard.rules.sender_is_agent import SenderIsAgent
from defiagent.guard.rules.slippage_bound import SlippageBound, SlippageConfig
from defiagent.guard.rules.spender_allowlisted import SpenderAllowlisted
from defiagent.guard.rules.target_allowlisted import TargetAllowlisted
from defiagent.guard.rules.tokens_allowlisted import TokensAllowlisted
from defiagent.guard.rules.value_cap_per_tx import PerTxValueCap, PerTxValueCapConfig
from defiagent.guard.rules.value_cap_per_window import WindowValueCap, WindowValueCapConfig
from defiagent.strategy.intents import Approve, SwapExactIn
from tests.guard import world as w
from tests.guard.world import AGENT, DTKN, DUSD, E18, PAIR, ROUTER, STRANGER, WETH

GWEI = 10**9
TARGET = w.addr(0x7777)  # a contract the tests give one function at a time


def function(
    signature: str,
    roles: dict[str, str] | None = None,
    constraints: list[ArgConstraint] | None = None,
    *,
    payable: bool = False,
) -> AllowedFunction:
    return AllowedFunction(
        selector=parse_signature(signature).selector,
        signature=signature,
        constraints=constraints or [],
        roles=roles or {},
        payable=payable,
    )


def with_target(fn: AllowedFunction, role: Role = Role.ROUTER, **ctx_overrides) -> GuardContext:
    entry = w.entry(TARGET, "Target", role, [fn])
    return w.context(allowlist=w.allowlist(entry), **ctx_overrides)


def call_to(
    signature: str,
    args: list,
    *,
    kind: str = "swap-exact-in",
    target: str = TARGET,
    value: int = 0,
    approvals: dict[str, int] | None = None,
    expected: list[ExpectedDelta] | None = None,
) -> PlannedCall:
    return PlannedCall(
        intent_id="edge",
        intent_kind=kind,
        target=target,
        data=encode_call(signature, args),
        value=value,
        sender=AGENT,
        allowed_approvals=approvals or {},
        expected=expected or [],
    )


def verdict(rule: Rule, call: PlannedCall, ctx: GuardContext | None = None) -> Verdict:
    ctx = ctx or w.context()
    return rule.check(GuardRequest.build(call, ctx), ctx)


def allowed(rule: Rule, call: PlannedCall, ctx: GuardContext | None = None) -> bool:
    v = verdict(rule, call, ctx)
    assert v.rule == rule.id
    if not v.allowed:
        assert v.reason, "a refusal must say why"
    return v.allowed


def refusal(rule: Rule, call: PlannedCall, ctx: GuardContext | None = None) -> str:
    v = verdict(rule, call, ctx)
    assert not v.allowed, f"{rule.id} allowed {call.description or call.data[:10]}"
    assert v.rule == rule.id
    return v.reason


def undecodable(call: PlannedCall) -> PlannedCall:
    """The same call with a truncated argument block: it has a selector but cannot decode."""
    return call.model_copy(update={"data": call.data[:-64]})


def swap_call(amount: int = 1_000 * E18, min_out: int | None = None, **kw) -> PlannedCall:
    if min_out is None:
        min_out = w.market().quote_out([DTKN, DUSD], amount) * 995 // 1000
    intent = SwapExactIn(
        token_in=DTKN, token_out=DUSD, amount_in=amount, min_amount_out=min_out, **kw
    )
    return w.plan(intent, **{DTKN: 10**30})[-1]


def approve_call(amount: int, *, planned: int | None = None, token: str = DUSD) -> PlannedCall:
    call = w.plan(Approve(token=token, spender=ROUTER, amount=max(amount, 1)))[0]
    data = encode_call("approve(address spender,uint256 amount)", [ROUTER, amount])
    key = f"{token}:{ROUTER}"
    return call.model_copy(
        update={"data": data, "allowed_approvals": {key: amount if planned is None else planned}}
    )


def ctx_with_prices(**prices: float) -> GuardContext:
    ctx = w.context()
    return dataclasses.replace(ctx, prices={**ctx.prices, **prices})


# --- unreadable calls: argument rules pass them on, naming what was not checked ----------


@pytest.mark.parametrize(
    ("rule", "what"),
    [
        (ApprovalBounded(), "approval amounts"),
        (ArgumentEquals(), "pinned arguments"),
        (DeadlineBounded(), "the deadline"),
        (PriceSane(), "the pools traded"),
        (RecipientIsSelf(), "the recipient"),
        (SlippageBound(), "slippage bounds"),
        (SpenderAllowlisted(), "the spender"),
        (TokensAllowlisted(), "the tokens"),
    ],
)
def test_argument_rules_name_what_an_undecodable_call_kept_them_from_checking(rule, what):
    fn = function(
        "pin(uint256 fee,address to)",
        constraints=[ArgConstraint(arg="fee", kind="equals", value="3")],
    )
    ctx = with_target(fn)
    call = undecodable(call_to("pin(uint256 fee,address to)", [3, AGENT]))
    v = verdict(rule, call, ctx)
    assert v.allowed  # FunctionInScope refuses it; this rule says what it could not check
    assert v.reason.startswith(f"{what} not checked: ")
    assert "decode" in v.reason or "data" in v.reason
    assert not verdict(FunctionInScope(), call, ctx).allowed


# --- ArgumentEquals: every argument type, the value itself and its neighbours --------------


EQ_SIG = "configure(uint24 fee,address referrer,bool flag,bytes32 tag,string label)"
EQ_ARGS = {"fee": 3000, "referrer": ROUTER, "flag": True, "tag": b"\x11" * 32, "label": "Main"}
EQ_PINNED = {
    "fee": "3000",
    "referrer": ROUTER.lower(),
    "flag": "TRUE",
    "tag": "0x" + "11" * 32,
    "label": "main",
}


def eq_ctx(**pins: str) -> GuardContext:
    constraints = [
        ArgConstraint(arg=a, kind=ConstraintKind.EQUALS, value=v) for a, v in pins.items()
    ]
    return with_target(function(EQ_SIG, constraints=constraints))


def eq_call(**changes) -> PlannedCall:
    args = {**EQ_ARGS, **changes}
    return call_to(EQ_SIG, [args[k] for k in ("fee", "referrer", "flag", "tag", "label")])


@pytest.mark.parametrize("arg", sorted(EQ_PINNED))
def test_argument_equals_allows_the_pinned_value_of_every_type(arg):
    assert allowed(ArgumentEquals(), eq_call(), eq_ctx(**{arg: EQ_PINNED[arg]}))


@pytest.mark.parametrize(
    ("arg", "other"),
    [
        ("fee", 3001),
        ("fee", 2999),
        ("referrer", STRANGER),
        ("flag", False),
        ("tag", b"\x11" * 31 + b"\x12"),
        ("label", "Main2"),
    ],
)
def test_argument_equals_refuses_any_other_value(arg, other):
    reason = refusal(ArgumentEquals(), eq_call(**{arg: other}), eq_ctx(**{arg: EQ_PINNED[arg]}))
    assert reason.startswith(f"{arg}=")
    assert "the entry requires" in reason


def test_argument_equals_reads_hex_numbers_and_refuses_an_unparsable_pin():
    assert allowed(ArgumentEquals(), eq_call(), eq_ctx(fee="0xbb8"))
    assert not allowed(ArgumentEquals(), eq_call(), eq_ctx(fee="three thousand"))
    assert not allowed(ArgumentEquals(), eq_call(fee=0x1BB8), eq_ctx(fee="0xbb8"))


def test_argument_equals_bool_pin_false():
    assert allowed(ArgumentEquals(), eq_call(flag=False), eq_ctx(flag="false"))
    assert not allowed(ArgumentEquals(), eq_call(flag=False), eq_ctx(flag="true"))


def test_argument_equals_checks_every_pin_not_only_the_first():
    ctx = eq_ctx(fee="3000", label="main")
    assert allowed(ArgumentEquals(), eq_call(), ctx)
    assert "label=" in refusal(ArgumentEquals(), eq_call(label="other"), ctx)


def test_argument_equals_refuses_a_pin_on_a_missing_argument_or_without_a_value():
    assert "cannot be applied" in refusal(ArgumentEquals(), eq_call(), eq_ctx(missing="1"))
    ctx = with_target(
        function(EQ_SIG, constraints=[ArgConstraint(arg="fee", kind=ConstraintKind.EQUALS)])
    )
    assert "cannot be applied" in refusal(ArgumentEquals(), eq_call(), ctx)


def test_argument_equals_has_nothing_to_say_without_pins():
    assert allowed(ArgumentEquals(), eq_call(), with_target(function(EQ_SIG)))
    assert allowed(ArgumentEquals(), swap_call())


# --- ApprovalBounded --------------------------------------------------------------------


def test_approval_at_the_planned_amount_passes_and_one_more_is_refused():
    ctx = ctx_with_prices(**{DUSD: 1e-18})
    assert allowed(ApprovalBounded(), approve_call(100 * E18), ctx)
    reason = refusal(ApprovalBounded(), approve_call(100 * E18 + 1, planned=100 * E18), ctx)
    assert "more than the plan needs" in reason
    assert str(100 * E18) in reason


def test_approval_without_a_planned_allowance_is_refused_naming_zero():
    call = approve_call(5).model_copy(update={"allowed_approvals": {}})
    assert "more than the plan needs (0)" in refusal(ApprovalBounded(), call, ctx_with_prices())


def test_approval_value_cap_is_inclusive():
    rule = ApprovalBounded(ApprovalBoundedConfig(max_value=100.0))
    ctx = ctx_with_prices(**{DUSD: 1.0})
    assert allowed(rule, approve_call(100), ctx)
    assert "above the cap 100.00" in refusal(rule, approve_call(101), ctx)


def test_approval_without_a_price_is_refused_unless_the_value_cap_is_off():
    ctx = w.context()
    ctx = dataclasses.replace(ctx, prices={k: v for k, v in ctx.prices.items() if k != DUSD})
    assert "cannot be valued" in refusal(ApprovalBounded(), approve_call(5), ctx)
    assert allowed(ApprovalBounded(ApprovalBoundedConfig(max_value=None)), approve_call(5), ctx)


def test_approval_of_exactly_unlimited_and_just_below():
    rule = ApprovalBounded(ApprovalBoundedConfig(max_value=None))
    top = 2**256 - 1
    assert "unlimited approval" in refusal(rule, approve_call(top, planned=top))
    assert allowed(rule, approve_call(2**255 - 1, planned=2**255 - 1))
    assert "unlimited approval" in refusal(rule, approve_call(2**255, planned=2**255))


def test_max_amount_constraint_edge():
    sig = "approve(address spender,uint256 amount)"
    cap = ArgConstraint(arg="amount", kind=ConstraintKind.MAX_AMOUNT, value="0x64")  # 100
    ctx = with_target(function(sig, constraints=[cap]), role=Role.TOKEN)
    ctx = dataclasses.replace(ctx, prices={**ctx.prices, TARGET: 1e-30})
    key = f"{TARGET}:{ROUTER}"
    at_cap = call_to(sig, [ROUTER, 100], kind="approve", approvals={key: 100})
    above = call_to(sig, [ROUTER, 101], kind="approve", approvals={key: 101})
    assert allowed(ApprovalBounded(), at_cap, ctx)
    assert "above the entry's limit 0x64" in refusal(ApprovalBounded(), above, ctx)


def test_max_amount_constraint_that_cannot_be_applied_is_refused():
    sig = "approve(address spender,uint256 amount)"
    for c in (
        ArgConstraint(arg="spender", kind=ConstraintKind.MAX_AMOUNT, value="1"),
        ArgConstraint(arg="amount", kind=ConstraintKind.MAX_AMOUNT),
        ArgConstraint(arg="nothing", kind=ConstraintKind.MAX_AMOUNT, value="1"),
    ):
        ctx = with_target(function(sig, constraints=[c]), role=Role.TOKEN)
        call = call_to(sig, [ROUTER, 1], kind="approve", approvals={f"{TARGET}:{ROUTER}": 1})
        assert "cannot be applied" in refusal(ApprovalBounded(), call, ctx)


def test_approval_rule_ignores_other_constraints_and_other_functions():
    sig = "approve(address spender,uint256 amount)"
    other = ArgConstraint(arg="spender", kind=ConstraintKind.IN_ALLOWLIST)
    ctx = with_target(function(sig, constraints=[other]), role=Role.TOKEN)
    ctx = dataclasses.replace(ctx, prices={**ctx.prices, TARGET: 1e-30})
    call = call_to(sig, [ROUTER, 7], kind="approve", approvals={f"{TARGET}:{ROUTER}": 7})
    assert allowed(ApprovalBounded(), call, ctx)
    assert allowed(ApprovalBounded(), swap_call())


def test_set_approval_for_all_is_never_allowed():
    sig = "setApprovalForAll(address operator,bool approved)"
    ctx = with_target(function(sig), role=Role.TOKEN)
    reason = refusal(ApprovalBounded(), call_to(sig, [ROUTER, True], kind="approve"), ctx)
    assert reason == "setApprovalForAll grants everything at once and is never allowed"


def test_approval_whose_amount_or_spender_cannot_be_found_is_refused():
    for sig, args in (
        ("approve(address spender,bool all)", [ROUTER, True]),
        ("approve(uint256 id,uint256 amount)", [1, 2]),
    ):
        ctx = with_target(function(sig), role=Role.TOKEN)
        reason = refusal(ApprovalBounded(), call_to(sig, args, kind="approve"), ctx)
        assert reason == "cannot find the amount and spender of approve"


def test_approval_explain_names_the_cap_only_when_there_is_one():
    assert ApprovalBounded().explain().endswith("needs, worth at most 1,000.00")
    off = ApprovalBounded(ApprovalBoundedConfig(max_value=None)).explain()
    assert off == "ApprovalBounded: approvals only for the exact amount a planned call needs"


# --- ChainMatches -----------------------------------------------------------------------


def test_chain_matches_each_source():
    call = swap_call()
    assert allowed(ChainMatches(), call)
    reason = refusal(ChainMatches(), call, w.context(chain_id=1))
    assert reason == f"the allowlist is for chain {w.CHAIN}, the agent runs on chain 1"
    other_market = w.market().model_copy(update={"chain_id": 5})
    reason = refusal(ChainMatches(), call, w.context(market=other_market))
    assert reason == f"the market data is from chain 5, not {w.CHAIN}"
    assert allowed(ChainMatches(), call, dataclasses.replace(w.context(), market=None))


def test_chain_matches_refuses_an_entry_for_another_chain():
    al = w.allowlist()
    foreign = al.entries[ROUTER].model_copy(update={"chain_id": 10})
    al = al.model_copy(update={"entries": {**al.entries, ROUTER: foreign}})
    reason = refusal(ChainMatches(), swap_call(), w.context(allowlist=al))
    assert reason == "the entry for Router is for chain 10"
    unknown = call_to("f()", [], target=STRANGER)
    assert allowed(ChainMatches(), unknown)  # TargetAllowlisted refuses it


# --- CodehashPinned ---------------------------------------------------------------------


def test_codehash_messages_say_when():
    ctx = w.context()
    missing = dataclasses.replace(
        ctx, codehashes={a: h for a, h in ctx.codehashes.items() if a != ROUTER}
    )
    reason = refusal(CodehashPinned(), swap_call(), missing)
    assert reason == f"the code of Router ({ROUTER}) was not read at block 100"
    now = dataclasses.replace(missing, block_number=0)
    assert refusal(CodehashPinned(), swap_call(), now).endswith("was not read now")


def test_codehash_compares_case_insensitively():
    ctx = w.context()
    upper = {a: "0x" + h[2:].upper() for a, h in ctx.codehashes.items()}
    assert allowed(CodehashPinned(), swap_call(), dataclasses.replace(ctx, codehashes=upper))


def test_codehash_checks_entries_named_after_an_unknown_address():
    # An argument that names no entry is skipped, and the entries after it are still checked.
    sig = "route(address a,address b)"
    ctx = with_target(function(sig))
    drifted = dataclasses.replace(ctx, codehashes={**ctx.codehashes, DUSD: "0x" + "ee" * 32})
    call = call_to(sig, [STRANGER, DUSD])
    assert allowed(CodehashPinned(), call, ctx)
    assert "the code of DUSD" in refusal(CodehashPinned(), call, drifted)


def test_codehash_of_an_undecodable_call_checks_the_target():
    ctx = w.context()
    drifted = dataclasses.replace(ctx, codehashes={**ctx.codehashes, ROUTER: "0x" + "ee" * 32})
    assert "changed since it was approved" in refusal(
        CodehashPinned(), undecodable(swap_call()), drifted
    )
    assert allowed(CodehashPinned(), undecodable(swap_call()), ctx)


def test_proxy_implementation_unread_or_changed():
    proxied, impl = w.addr(0x9001), w.addr(0x9002)
    al = w.allowlist(w.proxy_entry(proxied, impl))
    call = w.plan(Approve(token=proxied, spender=ROUTER, amount=5))[0]
    ctx = w.context(allowlist=al)
    assert allowed(CodehashPinned(), call, ctx)
    unread = dataclasses.replace(ctx, implementations={})
    assert refusal(CodehashPinned(), call, unread) == (
        "the implementation behind proxy Proxied token was not read at block 100"
    )
    upper = dataclasses.replace(
        ctx, implementations={proxied: (impl.lower(), w.codehash_of("impl").upper())}
    )
    assert allowed(CodehashPinned(), call, upper)
    changed = dataclasses.replace(ctx, implementations={proxied: (impl, "0x" + "11" * 32)})
    assert refusal(CodehashPinned(), call, changed) == (
        "the implementation behind Proxied token changed since it was approved at block 100"
    )


# --- DeadlineBounded --------------------------------------------------------------------


DL_SIG = "expire(uint256 deadline)"


def deadline_call(deadline: int) -> PlannedCall:
    return call_to(DL_SIG, [deadline], kind="wrap")


def deadline_ctx(**overrides) -> GuardContext:
    return with_target(function(DL_SIG, {"deadline": "deadline"}), **overrides)


def test_deadline_edges():
    rule = DeadlineBounded(DeadlineConfig(max_deadline_seconds=600))
    now, ctx = w.NOW, deadline_ctx()
    assert refusal(rule, deadline_call(now), ctx) == (
        f"the deadline {now} has already passed (block time {now})"
    )
    assert allowed(rule, deadline_call(now + 1), ctx)
    assert allowed(rule, deadline_call(now + 600), ctx)
    assert refusal(rule, deadline_call(now + 601), ctx) == (
        "the deadline is 601s ahead, more than 600s"
    )


def test_deadline_uses_the_block_time_and_falls_back_to_the_clock():
    rule = DeadlineBounded(DeadlineConfig(max_deadline_seconds=600))
    later = deadline_ctx(market=w.market(block_timestamp=w.NOW + 100))
    later = dataclasses.replace(later, block_timestamp=w.NOW + 100)
    assert "already passed" in refusal(rule, deadline_call(w.NOW + 50), later)
    assert allowed(rule, deadline_call(w.NOW + 650), later)
    no_block = dataclasses.replace(deadline_ctx(), block_timestamp=0)
    assert allowed(rule, deadline_call(w.NOW + 1), no_block)
    assert "already passed" in refusal(rule, deadline_call(w.NOW), no_block)


def test_deadline_optional_outside_trades_required_in_them():
    plain = with_target(function("expire(uint256 x)"))
    assert allowed(DeadlineBounded(), call_to("expire(uint256 x)", [1], kind="wrap"), plain)
    reason = refusal(DeadlineBounded(), call_to("expire(uint256 x)", [1]), plain)
    assert reason.endswith("declares no deadline argument, so the deadline bound cannot be checked")


def test_deadline_explain():
    assert DeadlineBounded().explain() == "DeadlineBounded: deadlines at most 1800s ahead"


# --- FeeCap -----------------------------------------------------------------------------


def fees(base_gwei: float, tip_gwei: float) -> GuardContext:
    quote = FeeQuote(
        base_fee_per_gas=int(base_gwei * GWEI), max_priority_fee_per_gas=int(tip_gwei * GWEI)
    )
    return w.context(fees=quote)


def test_fee_cap_edges():
    rule = FeeCap(FeeCapConfig(max_fee_per_gas_gwei=50, max_priority_fee_per_gas_gwei=2))
    assert allowed(rule, swap_call(), fees(48, 2))
    assert refusal(rule, swap_call(), fees(48.5, 2)) == (
        "base fee + tip is 50.50 gwei, above the cap 50.00 gwei"
    )
    assert allowed(rule, swap_call(), fees(0, 2))
    tip = FeeQuote(base_fee_per_gas=0, max_priority_fee_per_gas=2 * GWEI + 1)
    assert refusal(rule, swap_call(), w.context(fees=tip)) == (
        "the tip 2.00 gwei is above the cap 2.00 gwei"
    )
    # the cap is on base fee + tip: a base fee under the cap with a tip over it is refused
    assert "base fee + tip is 51.00" in refusal(rule, swap_call(), fees(49, 2))


def test_fee_cap_refuses_unread_fees_and_explains():
    assert refusal(FeeCap(), swap_call(), w.context(fees=None)) == (
        "the current network fee was not read"
    )
    assert FeeCap().explain() == "FeeCap: wait while base fee + tip > 100 gwei or tip > 3 gwei"


# --- FunctionInScope ---------------------------------------------------------------------


def test_function_in_scope_lists_what_is_allowed():
    data = encode_call("transferFrom(address from,address to,uint256 amount)", [AGENT, STRANGER, 1])
    call = swap_call().model_copy(update={"target": DUSD, "data": data})
    reason = refusal(FunctionInScope(), call)
    assert reason == "function 0x23b872dd is not allowed on DUSD (allowed: approve)"


def test_function_in_scope_with_no_selector_and_no_functions():
    entry = w.entry(TARGET, "Empty", Role.ROUTER, [])
    ctx = w.context(allowlist=w.allowlist(entry))
    call = call_to("f()", []).model_copy(update={"data": "0xnothex"})
    assert refusal(FunctionInScope(), call, ctx) == (
        "function (none) is not allowed on Empty (allowed: nothing)"
    )


def test_function_in_scope_without_an_entry():
    call = call_to("f()", [], target=STRANGER)
    assert refusal(FunctionInScope(), call) == "no allowlist entry, so no function is in scope"


def test_function_in_scope_refuses_an_inconsistent_entry():
    fn = function("f(uint256 a)").model_copy(update={"signature": "g(uint256 a)"})
    ctx = with_target(fn)
    call = call_to("f(uint256 a)", [1])
    assert "is inconsistent: g(uint256 a) does not hash to" in refusal(FunctionInScope(), call, ctx)


def test_function_in_scope_names_the_decode_error():
    reason = refusal(FunctionInScope(), undecodable(swap_call()))
    assert reason
    assert reason != "the calldata does not decode"


def test_value_to_payable_and_non_payable_functions():
    sig = "deposit(uint256 a)"
    paying = call_to(sig, [1], value=1)
    assert allowed(FunctionInScope(), paying, with_target(function(sig, payable=True)))
    assert refusal(FunctionInScope(), paying, with_target(function(sig))) == (
        "deposit is not payable but the call sends 1 wei"
    )
    assert allowed(FunctionInScope(), call_to(sig, [1]), with_target(function(sig)))


# --- IntentKindAllowed, KillSwitchOff, SenderIsAgent, TargetAllowlisted ----------------------


def test_intent_kinds():
    rule = IntentKindAllowed(IntentKindConfig(allowed_kinds=["swap-exact-in"]))
    assert allowed(rule, swap_call())
    assert refusal(rule, swap_call().model_copy(update={"intent_kind": "wrap"})) == (
        "intent kind 'wrap' is not enabled in [guard.intent_kinds]"
    )
    raw = IntentKindAllowed(IntentKindConfig(allowed_kinds=["raw-call"]))
    assert refusal(raw, swap_call().model_copy(update={"intent_kind": "raw-call"})) == (
        "the strategy composed a raw call; strategies may only send intents"
    )
    assert rule.explain() == "IntentKindAllowed: strategies may ask for swap-exact-in"


def test_kill_switch_reason_shown_only_when_given():
    assert allowed(KillSwitchOff(), swap_call())
    assert refusal(KillSwitchOff(), swap_call(), w.context(kill_switch_on=True)) == (
        "the kill switch is on"
    )
    ctx = w.context(kill_switch_on=True, kill_switch_reason="incident")
    assert refusal(KillSwitchOff(), swap_call(), ctx) == "the kill switch is on (incident)"


def test_sender_compared_case_insensitively():
    call = swap_call()
    assert allowed(SenderIsAgent(), call, dataclasses.replace(w.context(), agent=AGENT.lower()))
    other = call.model_copy(update={"sender": STRANGER})
    assert refusal(SenderIsAgent(), other) == (
        f"the call is from {STRANGER}, not from the agent {AGENT}"
    )


def test_target_unknown_or_revoked():
    assert allowed(TargetAllowlisted(), swap_call())
    unknown = call_to("f()", [], target=STRANGER)
    assert refusal(TargetAllowlisted(), unknown) == f"{STRANGER} is not on the active allowlist"
    al = w.allowlist()
    revoked = al.entries[ROUTER].model_copy(update={"revoked": True})
    ctx = w.context(allowlist=al.model_copy(update={"entries": {**al.entries, ROUTER: revoked}}))
    assert refusal(TargetAllowlisted(), swap_call(), ctx) == f"Router ({ROUTER}) has been revoked"


# --- PriceSane --------------------------------------------------------------------------


PAIR_SIG = "trade(address tokenIn,address tokenOut,uint256 amount)"
PAIR_ROLES = {"tokenIn": "token-in", "tokenOut": "token-out", "amount": "amount-in"}


def test_price_sane_reads_token_in_and_token_out():
    ctx = with_target(function(PAIR_SIG, PAIR_ROLES))
    assert allowed(PriceSane(), call_to(PAIR_SIG, [DTKN, DUSD, 1]), ctx)
    bad = w.context(market=w.market(checks_ok=False))
    bad = dataclasses.replace(bad, allowlist=ctx.allowlist)
    bad = GuardContext(**{f.name: getattr(bad, f.name) for f in dataclasses.fields(bad) if f.init})
    assert "price is not sane" in refusal(PriceSane(), call_to(PAIR_SIG, [DTKN, DUSD, 1]), bad)


@pytest.mark.parametrize(
    "roles",
    [
        {"tokenIn": "token-in", "amount": "amount-in"},
        {"tokenOut": "token-out", "amount": "amount-in"},
        {"tokenIn": "token-a", "amount": "amount-in"},
        {"tokenOut": "token-b", "amount": "amount-in"},
    ],
)
def test_price_sane_needs_both_tokens_of_a_pair(roles):
    ctx = with_target(function(PAIR_SIG, roles))
    reason = refusal(PriceSane(), call_to(PAIR_SIG, [DTKN, DUSD, 1]), ctx)
    assert reason.endswith(
        "declares no path argument (nor token-in and token-out, nor token-a and token-b), "
        "so the pools it trades through cannot be price-checked"
    )


def test_price_sane_reads_token_a_and_token_b():
    roles = {"tokenIn": "token-a", "tokenOut": "token-b", "amount": "liquidity"}
    ctx = with_target(function(PAIR_SIG, roles))
    assert allowed(PriceSane(), call_to(PAIR_SIG, [DTKN, DUSD, 1], kind="add-liquidity"), ctx)


def test_price_sane_without_market_or_without_a_check_for_the_pool():
    ctx = dataclasses.replace(w.context(), market=None)
    assert refusal(PriceSane(), swap_call(), ctx) == (
        "no market snapshot, so no price can be checked"
    )
    ctx = with_target(function(PAIR_SIG, PAIR_ROLES))
    reason = refusal(PriceSane(), call_to(PAIR_SIG, [DTKN, WETH, 1]), ctx)
    assert reason == f"no price check for the pool {DTKN}/{WETH}"


# --- RecipientIsSelf --------------------------------------------------------------------


def test_recipient_equals_self_constraint_on_any_argument_name():
    sig = "pay(address payee,uint256 amount)"
    c = [ArgConstraint(arg="payee", kind=ConstraintKind.EQUALS_SELF)]
    ctx = with_target(function(sig, constraints=c))
    assert allowed(RecipientIsSelf(), call_to(sig, [AGENT, 1]), ctx)
    assert allowed(RecipientIsSelf(), call_to(sig, [AGENT.lower(), 1]), ctx)
    reason = refusal(RecipientIsSelf(), call_to(sig, [STRANGER, 1]), ctx)
    assert reason == f"pay sends to payee={STRANGER}, which is not the agent {AGENT}"
    assert allowed(RecipientIsSelf(), call_to(sig, [STRANGER, 1]), with_target(function(sig)))


def test_recipient_named_argument_pinned_by_equals_is_left_to_argument_equals():
    sig = "pay(address to,address recipient)"
    c = [ArgConstraint(arg="to", kind=ConstraintKind.EQUALS, value=STRANGER)]
    ctx = with_target(function(sig, constraints=c))
    assert allowed(RecipientIsSelf(), call_to(sig, [STRANGER, AGENT]), ctx)
    assert "recipient=" in refusal(RecipientIsSelf(), call_to(sig, [STRANGER, STRANGER]), ctx)
    other = [ArgConstraint(arg="to", kind=ConstraintKind.IN_ALLOWLIST)]
    assert "to=" in refusal(
        RecipientIsSelf(),
        call_to(sig, [STRANGER, AGENT]),
        with_target(function(sig, constraints=other)),
    )


def test_recipient_constraint_on_a_missing_argument_is_refused():
    sig = "pay(address payee)"
    c = [ArgConstraint(arg="beneficiary", kind=ConstraintKind.EQUALS_SELF)]
    ctx = with_target(function(sig, constraints=c))
    assert refusal(RecipientIsSelf(), call_to(sig, [AGENT]), ctx) == (
        "the entry constrains argument 'beneficiary', which the function lacks"
    )


def test_recipient_in_an_address_array():
    sig = "split(address[] to)"
    ctx = with_target(function(sig))
    assert allowed(RecipientIsSelf(), call_to(sig, [[AGENT, AGENT]]), ctx)
    assert "to=" in refusal(RecipientIsSelf(), call_to(sig, [[AGENT, STRANGER]]), ctx)


# --- SpenderAllowlisted -----------------------------------------------------------------


def test_spender_roles():
    sig = "approve(address spender,uint256 amount)"
    ctx = with_target(function(sig), role=Role.TOKEN)
    assert allowed(SpenderAllowlisted(), call_to(sig, [ROUTER, 1], kind="approve"), ctx)
    reason = refusal(SpenderAllowlisted(), call_to(sig, [PAIR, 1], kind="approve"), ctx)
    assert reason.startswith(f"approval to Pair DUSD/DTKN ({PAIR}), whose role is pool")
    reason = refusal(SpenderAllowlisted(), call_to(sig, [STRANGER, 1], kind="approve"), ctx)
    assert reason == f"approval to {STRANGER}, which is not on the active allowlist"


def test_spender_revoked():
    sig = "approve(address spender,uint256 amount)"
    al = w.allowlist(w.entry(TARGET, "Target", Role.TOKEN, [function(sig)]))
    revoked = al.entries[ROUTER].model_copy(update={"revoked": True})
    ctx = w.context(allowlist=al.model_copy(update={"entries": {**al.entries, ROUTER: revoked}}))
    reason = refusal(SpenderAllowlisted(), call_to(sig, [ROUTER, 1], kind="approve"), ctx)
    assert reason == f"approval to Router ({ROUTER}), which has been revoked"


def test_spender_that_cannot_be_found():
    sig = "approve(uint256 amount,uint256 id)"
    ctx = with_target(function(sig), role=Role.TOKEN)
    reason = refusal(SpenderAllowlisted(), call_to(sig, [1, 2], kind="approve"), ctx)
    assert reason == "cannot find the spender of approve, so it cannot be judged"


def test_in_allowlist_constraint_checks_every_address_and_skips_other_kinds():
    sig = "route(address[] hops,address x)"
    c = [
        ArgConstraint(arg="x", kind=ConstraintKind.EQUALS_SELF),
        ArgConstraint(arg="hops", kind=ConstraintKind.IN_ALLOWLIST),
    ]
    ctx = with_target(function(sig, constraints=c))
    assert allowed(SpenderAllowlisted(), call_to(sig, [[DUSD, PAIR], AGENT]), ctx)
    reason = refusal(SpenderAllowlisted(), call_to(sig, [[DUSD, STRANGER], AGENT]), ctx)
    assert reason == f"hops={STRANGER} is not on the active allowlist"
    al = ctx.allowlist
    revoked = al.entries[PAIR].model_copy(update={"revoked": True})
    ctx = dataclasses.replace(
        ctx, allowlist=al.model_copy(update={"entries": {**al.entries, PAIR: revoked}})
    )
    ctx = GuardContext(**{f.name: getattr(ctx, f.name) for f in dataclasses.fields(ctx) if f.init})
    assert "not on the active allowlist" in refusal(
        SpenderAllowlisted(), call_to(sig, [[DUSD, PAIR], AGENT]), ctx
    )


# --- TokensAllowlisted ------------------------------------------------------------------


def test_tokens_in_constraint_and_by_name():
    sig = "swapIt(address thing,address[] path)"
    c = [ArgConstraint(arg="thing", kind=ConstraintKind.IN_TOKEN_ALLOWLIST)]
    ctx = with_target(function(sig, constraints=c))
    assert allowed(TokensAllowlisted(), call_to(sig, [DUSD, [DTKN, WETH]]), ctx)
    assert refusal(TokensAllowlisted(), call_to(sig, [ROUTER, [DTKN]]), ctx) == (
        f"thing includes {ROUTER}, which is not an allowlisted token"
    )
    assert "path includes" in refusal(TokensAllowlisted(), call_to(sig, [DUSD, [DTKN, PAIR]]), ctx)
    loose = with_target(function(sig))
    assert allowed(TokensAllowlisted(), call_to(sig, [ROUTER, [DTKN]]), loose)


def test_token_constraint_on_a_missing_argument_is_refused():
    sig = "swapIt(address[] path)"
    c = [ArgConstraint(arg="asset", kind=ConstraintKind.IN_TOKEN_ALLOWLIST)]
    ctx = with_target(function(sig, constraints=c))
    assert refusal(TokensAllowlisted(), call_to(sig, [[DTKN]]), ctx) == (
        "the entry constrains argument 'asset', which the function lacks"
    )


# --- value caps -------------------------------------------------------------------------


def outflow_call(amount: int) -> PlannedCall:
    return swap_call().model_copy(
        update={"expected": [ExpectedDelta(token=DUSD, min_delta=-amount)]}
    )


def test_per_tx_cap_is_inclusive():
    rule = PerTxValueCap(PerTxValueCapConfig(max_value=100.0))
    ctx = ctx_with_prices(**{DUSD: 1.0})
    assert allowed(rule, outflow_call(100), ctx)
    assert refusal(rule, outflow_call(101), ctx) == (
        "the call spends 101.00, above the per-transaction cap 100.00"
    )
    assert rule.explain() == "PerTxValueCap: at most 100.00 (numeraire) per transaction"


def test_window_cap_counts_what_was_already_spent():
    rule = WindowValueCap(WindowValueCapConfig(max_value=100.0, window_seconds=7_200))
    ctx = dataclasses.replace(ctx_with_prices(**{DUSD: 1.0}), spent_in_window=60.0)
    assert allowed(rule, outflow_call(40), ctx)
    assert refusal(rule, outflow_call(41), ctx) == (
        "60.00 already spent in the last 7200s; this call (41.00) would pass the cap 100.00"
    )
    assert rule.explain() == "WindowValueCap: at most 100.00 (numeraire) spent per 2h"


@pytest.mark.parametrize("rule", [PerTxValueCap(), WindowValueCap()])
def test_value_caps_refuse_what_they_cannot_value(rule):
    ctx = w.context()
    ctx = dataclasses.replace(ctx, prices={k: v for k, v in ctx.prices.items() if k != DUSD})
    assert refusal(rule, outflow_call(1), ctx) == (
        f"no sane price for {DUSD}, so the spend cannot be valued"
    )


# --- SlippageBound ----------------------------------------------------------------------


V2_IN = "swapIn(uint256 amountIn,uint256 minOut,address[] path)"
V2_IN_ROLES = {"amountIn": "amount-in", "minOut": "min-out", "path": "path"}
V2_OUT = "swapOut(uint256 amountOut,uint256 maxIn,address[] path)"
V2_OUT_ROLES = {"amountOut": "amount-out", "maxIn": "max-in", "path": "path"}
AMOUNT = 1_000 * E18


def quote_out(amount: int = AMOUNT) -> int:
    return w.market().quote_out([DTKN, DUSD], amount)


def quote_in(amount: int = AMOUNT) -> int:
    return w.market().quote_in([DUSD, DTKN], amount)


def test_min_out_at_the_floor_passes_and_one_below_is_refused():
    rule = SlippageBound(SlippageConfig(max_slippage_bps=100))
    ctx = with_target(function(V2_IN, V2_IN_ROLES))
    q = quote_out()
    floor = q * 9_900 // 10_000  # the exact floor, rounded down to whole units
    assert allowed(rule, call_to(V2_IN, [AMOUNT, floor, [DTKN, DUSD]]), ctx)
    reason = refusal(rule, call_to(V2_IN, [AMOUNT, floor - 1, [DTKN, DUSD]]), ctx)
    assert reason == f"min-out {floor - 1} is 100 bps below the pool quote {q} (limit 100 bps)"


def test_max_in_at_the_ceiling_passes_and_one_above_is_refused():
    rule = SlippageBound(SlippageConfig(max_slippage_bps=100))
    ctx = with_target(function(V2_OUT, V2_OUT_ROLES))
    q = quote_in()
    ceiling = -(-q * 10_100 // 10_000)  # the exact ceiling, rounded up to whole units
    kind = "swap-exact-out"
    assert allowed(rule, call_to(V2_OUT, [AMOUNT, ceiling, [DUSD, DTKN]], kind=kind), ctx)
    reason = refusal(rule, call_to(V2_OUT, [AMOUNT, ceiling + 1, [DUSD, DTKN]], kind=kind), ctx)
    assert reason == f"max-in {ceiling + 1} is 100 bps above the pool quote {q} (limit 100 bps)"


def test_zero_slippage_allows_only_the_quote():
    rule = SlippageBound(SlippageConfig(max_slippage_bps=0))
    ctx = with_target(function(V2_IN, V2_IN_ROLES))
    q = quote_out()
    assert allowed(rule, call_to(V2_IN, [AMOUNT, q, [DTKN, DUSD]]), ctx)
    assert not allowed(rule, call_to(V2_IN, [AMOUNT, q - 1, [DTKN, DUSD]]), ctx)


def test_swap_amounts_that_cannot_be_quoted_are_refused():
    rule = SlippageBound()
    ctx = with_target(function(V2_IN, V2_IN_ROLES))
    no_pool = call_to(V2_IN, [AMOUNT, 1, [DTKN, STRANGER]])
    assert refusal(rule, no_pool, ctx) == "the pools on the path cannot quote this swap"
    assert refusal(rule, call_to(V2_IN, [0, 0, [DTKN, DUSD]]), ctx) == (
        "the pools on the path cannot quote this swap"
    )
    out = with_target(function(V2_OUT, V2_OUT_ROLES))
    kind = "swap-exact-out"
    assert refusal(rule, call_to(V2_OUT, [0, 1, [DUSD, DTKN]], kind=kind), out) == (
        "the pools on the path cannot quote this swap"
    )
    assert refusal(rule, call_to(V2_OUT, [AMOUNT, 1, [DUSD, STRANGER]], kind=kind), out) == (
        "the pools on the path cannot quote this swap"
    )


def test_swap_without_a_market_is_refused():
    ctx = dataclasses.replace(with_target(function(V2_IN, V2_IN_ROLES)), market=None)
    assert refusal(SlippageBound(), call_to(V2_IN, [AMOUNT, 1, [DTKN, DUSD]]), ctx) == (
        "no market snapshot to quote the swap against"
    )


def test_swap_with_token_in_and_token_out_instead_of_a_path():
    sig = "swapPair(address tokenIn,address tokenOut,uint256 amountIn,uint256 minOut)"
    roles = {
        "tokenIn": "token-in",
        "tokenOut": "token-out",
        "amountIn": "amount-in",
        "minOut": "min-out",
    }
    ctx = with_target(function(sig, roles))
    q = quote_out()
    assert allowed(SlippageBound(), call_to(sig, [DTKN, DUSD, AMOUNT, q]), ctx)
    assert not allowed(SlippageBound(), call_to(sig, [DTKN, DUSD, AMOUNT, q // 2]), ctx)


@pytest.mark.parametrize(
    ("roles", "missing"),
    [
        (
            {"amountIn": "amount-in", "minOut": "min-out"},
            "path argument (nor token-in and token-out)",
        ),
        ({"amountIn": "amount-in", "minOut": "min-out", "path": "token-in"}, "path argument"),
        ({"minOut": "min-out", "path": "path"}, "amount-in argument"),
    ],
)
def test_swap_missing_a_role_is_refused(roles, missing):
    ctx = with_target(function(V2_IN, roles))
    reason = refusal(SlippageBound(), call_to(V2_IN, [AMOUNT, 1, [DTKN, DUSD]]), ctx)
    assert f"declares no {missing}" in reason
    assert reason.endswith("cannot be checked")


def test_exact_out_missing_amount_out_is_refused():
    roles = {"maxIn": "max-in", "path": "path"}
    ctx = with_target(function(V2_OUT, roles))
    call = call_to(V2_OUT, [AMOUNT, 1, [DUSD, DTKN]], kind="swap-exact-out")
    reason = refusal(SlippageBound(), call, ctx)
    assert "declares no amount-out argument" in reason
    assert reason.endswith(", so the slippage bound cannot be checked")


def test_payable_swap_quotes_the_eth_sent():
    sig = "swapEth(uint256 minOut,address[] path)"
    ctx = with_target(function(sig, {"minOut": "min-out", "path": "path"}, payable=True))
    q = w.market().quote_out([WETH, DUSD], E18)
    assert allowed(SlippageBound(), call_to(sig, [q, [WETH, DUSD]], value=E18), ctx)
    assert not allowed(SlippageBound(), call_to(sig, [q // 2, [WETH, DUSD]], value=E18), ctx)
    not_payable = with_target(function(sig, {"minOut": "min-out", "path": "path"}))
    reason = refusal(SlippageBound(), call_to(sig, [q, [WETH, DUSD]]), not_payable)
    assert "declares no amount-in argument" in reason


def test_trade_intent_without_any_bound_names_the_missing_role():
    sig = "doSwap(uint256 x)"
    ctx = with_target(function(sig))
    exact_in = refusal(SlippageBound(), call_to(sig, [1]), ctx)
    assert "declares no min-out argument" in exact_in
    exact_out = refusal(SlippageBound(), call_to(sig, [1], kind="swap-exact-out"), ctx)
    assert "declares no max-in argument" in exact_out
    assert allowed(SlippageBound(), call_to(sig, [1], kind="wrap"), ctx)


ADD = (
    "addLiq(address tokenA,address tokenB,uint256 amountADesired,uint256 amountBDesired,"
    "uint256 amountAMin,uint256 amountBMin)"
)
ADD_ROLES = {
    "tokenA": "token-a",
    "tokenB": "token-b",
    "amountADesired": "amount-a-desired",
    "amountBDesired": "amount-b-desired",
    "amountAMin": "amount-a-min",
    "amountBMin": "amount-b-min",
}
REMOVE = "removeLiq(address tokenA,address tokenB,uint256 liquidity,uint256 amountAMin,uint256 amountBMin)"
REMOVE_ROLES = {
    "tokenA": "token-a",
    "tokenB": "token-b",
    "liquidity": "liquidity",
    "amountAMin": "amount-a-min",
    "amountBMin": "amount-b-min",
}


def test_add_liquidity_minimums_follow_the_pool_ratio_both_ways():
    # the pool holds 1 DUSD per 2 DTKN: the router keeps that ratio
    ctx = with_target(function(ADD, ADD_ROLES))
    rule = SlippageBound(SlippageConfig(max_slippage_bps=100))
    kind = "add-liquidity"
    # B is the binding side: 100 DUSD wants 200 DTKN, 300 offered
    ok = call_to(ADD, [DUSD, DTKN, 100 * E18, 300 * E18, 99 * E18, 198 * E18], kind=kind)
    assert allowed(rule, ok, ctx)
    low_b = call_to(ADD, [DUSD, DTKN, 100 * E18, 300 * E18, 99 * E18, 198 * E18 - 1], kind=kind)
    assert refusal(rule, low_b, ctx) == (
        f"amountBMin {198 * E18 - 1} is more than 100 bps below the expected {200 * E18}"
    )
    low_a = call_to(ADD, [DUSD, DTKN, 100 * E18, 300 * E18, 99 * E18 - 1, 198 * E18], kind=kind)
    assert "amountAMin" in refusal(rule, low_a, ctx)
    # A is the binding side: 200 DTKN offered for 150 DUSD wants only 100 DUSD
    ok_a = call_to(ADD, [DUSD, DTKN, 150 * E18, 200 * E18, 99 * E18, 198 * E18], kind=kind)
    assert allowed(rule, ok_a, ctx)
    low = call_to(ADD, [DUSD, DTKN, 150 * E18, 200 * E18, 99 * E18 - 1, 198 * E18], kind=kind)
    assert refusal(rule, low, ctx) == (
        f"amountAMin {99 * E18 - 1} is more than 100 bps below the expected {100 * E18}"
    )


def test_add_liquidity_with_the_tokens_in_pool_order_reversed():
    ctx = with_target(function(ADD, ADD_ROLES))
    call = call_to(
        ADD, [DTKN, DUSD, 200 * E18, 100 * E18, 198 * E18, 99 * E18], kind="add-liquidity"
    )
    assert allowed(SlippageBound(), call, ctx)
    low = call_to(
        ADD, [DTKN, DUSD, 200 * E18, 100 * E18, 197 * E18, 99 * E18], kind="add-liquidity"
    )
    assert not allowed(SlippageBound(), low, ctx)


def test_remove_liquidity_minimums_are_a_share_of_the_reserves():
    ctx = with_target(function(REMOVE, REMOVE_ROLES))
    pool = w.market().pool_for(DUSD, DTKN)
    liq = 1_000 * E18
    want_a = liq * pool.reserve0 // pool.total_supply
    want_b = liq * pool.reserve1 // pool.total_supply
    rule = SlippageBound(SlippageConfig(max_slippage_bps=0))
    kind = "remove-liquidity"
    assert allowed(rule, call_to(REMOVE, [DUSD, DTKN, liq, want_a, want_b], kind=kind), ctx)
    assert "amountAMin" in refusal(
        rule, call_to(REMOVE, [DUSD, DTKN, liq, want_a - 1, want_b], kind=kind), ctx
    )
    assert "amountBMin" in refusal(
        rule, call_to(REMOVE, [DUSD, DTKN, liq, want_a, want_b - 1], kind=kind), ctx
    )


def test_remove_liquidity_with_an_unknown_lp_supply_is_refused():
    m = w.market()
    pools = [p.model_copy(update={"total_supply": 0}) for p in m.pools]
    ctx = with_target(function(REMOVE, REMOVE_ROLES), market=m.model_copy(update={"pools": pools}))
    call = call_to(REMOVE, [DUSD, DTKN, E18, 0, 0], kind="remove-liquidity")
    assert refusal(SlippageBound(), call, ctx) == (
        "the pool's LP supply is unknown, so the minimums cannot be checked"
    )


def test_liquidity_change_without_a_pool_or_a_market_is_refused():
    ctx = with_target(function(REMOVE, REMOVE_ROLES))
    call = call_to(REMOVE, [DTKN, WETH, E18, 0, 0], kind="remove-liquidity")
    reason = "no pool for this liquidity change in the market snapshot"
    assert refusal(SlippageBound(), call, ctx) == reason
    no_market = dataclasses.replace(ctx, market=None)
    assert (
        refusal(
            SlippageBound(),
            call_to(REMOVE, [DUSD, DTKN, E18, 0, 0], kind="remove-liquidity"),
            no_market,
        )
        == reason
    )


@pytest.mark.parametrize("drop", ["amountAMin", "amountBMin", "tokenA", "tokenB"])
def test_liquidity_change_missing_a_role_is_refused(drop):
    roles = {k: v for k, v in REMOVE_ROLES.items() if k != drop}
    ctx = with_target(function(REMOVE, roles))
    call = call_to(REMOVE, [DUSD, DTKN, E18, 0, 0], kind="remove-liquidity")
    reason = refusal(SlippageBound(), call, ctx)
    assert f"declares no {REMOVE_ROLES[drop]} argument" in reason
    assert reason.endswith(", so the slippage bound cannot be checked")


@pytest.mark.parametrize(
    ("drop", "missing"),
    [("amountADesired", "amount-a-desired"), ("amountBDesired", "amount-b-desired")],
)
def test_add_liquidity_missing_a_desired_amount_is_refused(drop, missing):
    roles = {k: v for k, v in ADD_ROLES.items() if k != drop}
    ctx = with_target(function(ADD, roles))
    call = call_to(ADD, [DUSD, DTKN, E18, E18, 0, 0], kind="add-liquidity")
    reason = refusal(SlippageBound(), call, ctx)
    assert f"declares no {missing} argument (nor liquidity)" in reason
    assert reason.endswith(", so the slippage bound cannot be checked")


def test_liquidity_roles_make_a_call_a_liquidity_change_whatever_its_intent():
    ctx = with_target(function(REMOVE, REMOVE_ROLES))
    call = call_to(REMOVE, [DUSD, DTKN, E18, 0, 0], kind="approve")
    assert "below the expected" in refusal(SlippageBound(), call, ctx)


def test_slippage_ignores_calls_that_are_not_trades():
    assert allowed(SlippageBound(), approve_call(5))
    assert SlippageBound().explain() == "SlippageBound: min-out within 100 bps of the pool quote"


def test_exact_out_at_zero_slippage_allows_exactly_the_quote():
    rule = SlippageBound(SlippageConfig(max_slippage_bps=0))
    ctx = with_target(function(V2_OUT, V2_OUT_ROLES))
    q = quote_in()
    kind = "swap-exact-out"
    assert allowed(rule, call_to(V2_OUT, [AMOUNT, q, [DUSD, DTKN]], kind=kind), ctx)
    assert not allowed(rule, call_to(V2_OUT, [AMOUNT, q + 1, [DUSD, DTKN]], kind=kind), ctx)


def test_adding_to_an_empty_pool_expects_the_desired_amounts():
    m = w.market()
    pools = [
        p.model_copy(update={"reserve0": 0, "reserve1": 0}) if p.address == PAIR else p
        for p in m.pools
    ]
    ctx = with_target(function(ADD, ADD_ROLES), market=m.model_copy(update={"pools": pools}))
    rule = SlippageBound(SlippageConfig(max_slippage_bps=0))
    kind = "add-liquidity"
    ok = call_to(ADD, [DUSD, DTKN, 100 * E18, 300 * E18, 100 * E18, 300 * E18], kind=kind)
    assert allowed(rule, ok, ctx)
    low = call_to(ADD, [DUSD, DTKN, 100 * E18, 300 * E18, 100 * E18, 300 * E18 - 1], kind=kind)
    assert "amountBMin" in refusal(rule, low, ctx)
