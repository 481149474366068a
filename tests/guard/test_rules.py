"""Each guard rule: a legitimate planned call passes it, and the attack it exists for is refused."""

from __future__ import annotations

import dataclasses

import pytest

from defiagent.allowlist.models import ArgConstraint, ConstraintKind
from defiagent.decisions import Verdict
from defiagent.execution.models import ExpectedDelta, PlannedCall
from defiagent.guard.base import FeeQuote, GuardRequest, RiskState, Rule, Severity
from defiagent.guard.calldata import encode_call
from defiagent.guard.guard import Guard
from defiagent.guard.registry import ALL_RULES, build_rules
from defiagent.strategy.intents import (
    AddLiquidity,
    Approve,
    RawCall,
    RemoveLiquidity,
    SwapExactIn,
    SwapExactOut,
    Unwrap,
    Wrap,
)
from tests.guard import world as w
from tests.guard.world import (
    AGENT,
    DTKN,
    DUSD,
    E18,
    PAIR,
    ROUTER,
    STRANGER,
    WETH,
    context,
    decide,
    plan,
    refused_by,
)


def swap(amount=1_000 * E18, min_out=None, **kw):
    if min_out is None:
        min_out = w.market().quote_out([DTKN, DUSD], amount) * 995 // 1000
    intent = SwapExactIn(
        token_in=DTKN, token_out=DUSD, amount_in=amount, min_amount_out=min_out, **kw
    )
    return plan(intent, **{DTKN: 10**30})[-1]  # allowance already there: one call


LEGIT = {
    "swap-exact-in": lambda: plan(
        SwapExactIn(token_in=DTKN, token_out=DUSD, amount_in=1_000 * E18, min_amount_out=495 * E18)
    ),
    "swap-exact-out": lambda: plan(
        SwapExactOut(token_in=DUSD, token_out=DTKN, amount_out=1_000 * E18, max_amount_in=505 * E18)
    ),
    "approve": lambda: plan(Approve(token=DUSD, spender=ROUTER, amount=10 * E18)),
    "wrap": lambda: plan(Wrap(amount=E18 // 10)),
    "unwrap": lambda: plan(Unwrap(amount=E18 // 10)),
    "add-liquidity": lambda: plan(
        AddLiquidity(
            token_a=DUSD,
            token_b=DTKN,
            amount_a=100 * E18,
            amount_b=200 * E18,
            min_amount_a=99 * E18,
            min_amount_b=198 * E18,
        )
    ),
    "remove-liquidity": lambda: plan(
        RemoveLiquidity(
            token_a=DUSD,
            token_b=DTKN,
            liquidity=E18,
            min_amount_a=705 * 10**15,
            min_amount_b=1_410 * 10**15,
        )
    ),
}


@pytest.mark.parametrize("kind", sorted(LEGIT))
def test_legitimate_plans_pass_every_rule(kind):
    for call in LEGIT[kind]():
        decision = decide(call)
        assert decision.allowed, f"{call.description}: {decision.reason()}"
        assert len(decision.verdicts) == len(ALL_RULES)


def test_kill_switch_refuses_everything():
    d = decide(swap(), context(kill_switch_on=True, kill_switch_reason="incident 42"))
    assert refused_by(d) == {"kill-switch-off"}
    assert "incident 42" in d.reason()


def test_chain_mismatch_is_refused():
    assert refused_by(decide(swap(), context(chain_id=1))) == {"chain-matches"}


def test_call_from_another_sender_is_refused():
    call = swap().model_copy(update={"sender": STRANGER})
    assert "sender-is-agent" in refused_by(decide(call))


def test_raw_call_is_refused_even_to_an_allowlisted_function():
    call = swap().model_copy(update={"intent_kind": "raw-call"})
    d = decide(call)
    assert refused_by(d) == {"intent-kind-allowed"}


def test_rate_limit_refuses_the_surplus():
    assert decide(swap(), context(intents_in_window=10)).allowed
    d = decide(swap(), context(intents_in_window=11))
    assert refused_by(d) == {"intent-rate-limit"}
    assert "11 intents" in d.reason()


def test_unknown_target_is_refused():
    call = plan(RawCall(target=STRANGER, data="0xa9059cbb"))[0].model_copy(
        update={"intent_kind": "approve"}
    )
    assert {"target-allowlisted", "function-in-scope"} <= refused_by(decide(call))


def test_revoked_entry_is_refused():
    al = w.allowlist()
    revoked = al.entries[ROUTER].model_copy(update={"revoked": True})
    al = al.model_copy(update={"entries": {**al.entries, ROUTER: revoked}})
    assert "target-allowlisted" in refused_by(decide(swap(), context(allowlist=al)))


def test_codehash_drift_of_the_target_is_refused():
    ctx = context()
    drifted = dataclasses.replace(ctx, codehashes={**ctx.codehashes, ROUTER: "0x" + "ee" * 32})
    d = decide(swap(), drifted)
    assert refused_by(d) == {"codehash-pinned"}
    assert "changed since it was approved" in d.reason()


def test_codehash_drift_of_a_token_in_the_path_is_refused():
    ctx = context()
    drifted = dataclasses.replace(ctx, codehashes={**ctx.codehashes, DTKN: "0x" + "ee" * 32})
    assert refused_by(decide(swap(), drifted)) == {"codehash-pinned"}


def test_unread_codehash_is_refused():
    ctx = context()
    missing = dataclasses.replace(
        ctx, codehashes={a: h for a, h in ctx.codehashes.items() if a != ROUTER}
    )
    assert refused_by(decide(swap(), missing)) == {"codehash-pinned"}


def test_proxy_implementation_drift_is_refused():
    proxied = w.addr(0x9001)
    impl = w.addr(0x9002)
    al = w.allowlist(w.proxy_entry(proxied, impl))
    call = plan(Approve(token=proxied, spender=ROUTER, amount=5))[0]
    ctx = context(allowlist=al)
    ctx = dataclasses.replace(ctx, prices={**ctx.prices, proxied: 1e-18})
    assert decide(call, ctx).allowed
    moved = dataclasses.replace(
        ctx, implementations={proxied: (w.addr(0x9003), w.codehash_of("impl"))}
    )
    d = decide(call, moved)
    assert refused_by(d) == {"codehash-pinned"}
    assert "now points to" in d.reason()
    changed = dataclasses.replace(ctx, implementations={proxied: (impl, "0x" + "11" * 32)})
    assert refused_by(decide(call, changed)) == {"codehash-pinned"}


def test_function_not_in_scope_is_refused():
    data = encode_call("transferFrom(address from,address to,uint256 amount)", [AGENT, STRANGER, 1])
    call = PlannedCall(intent_id="x", intent_kind="approve", target=DUSD, data=data, sender=AGENT)
    d = decide(call)
    assert "function-in-scope" in refused_by(d)
    assert "not allowed on DUSD" in d.reason()


def test_calldata_with_trailing_bytes_is_refused():
    call = swap()
    call = call.model_copy(update={"data": call.data + "00" * 32})
    assert "function-in-scope" in refused_by(decide(call))


def test_value_sent_to_a_non_payable_function_is_refused():
    call = swap().model_copy(update={"value": 1})
    assert "function-in-scope" in refused_by(decide(call))


def test_foreign_recipient_is_refused():
    d = decide(swap(recipient=STRANGER))
    assert refused_by(d) == {"recipient-is-self"}
    assert STRANGER in d.reason()


def test_recipient_convention_applies_without_an_entry_constraint():
    al = w.allowlist()
    router = al.entries[ROUTER]
    bare = [f.model_copy(update={"constraints": []}) for f in router.functions]
    al = al.model_copy(
        update={"entries": {**al.entries, ROUTER: router.model_copy(update={"functions": bare})}}
    )
    assert refused_by(decide(swap(recipient=STRANGER), context(allowlist=al))) >= {
        "recipient-is-self"
    }


def test_unlimited_approval_to_a_stranger_is_refused():
    call = plan(Approve(token=DTKN, spender=STRANGER, amount=2**256 - 1))[0]
    d = decide(call)
    assert refused_by(d) == {"approval-bounded", "spender-allowlisted"}


def test_approval_above_the_plan_is_refused():
    call = plan(Approve(token=DTKN, spender=ROUTER, amount=10 * E18))[0]
    inflated = call.model_copy(update={"allowed_approvals": {f"{DTKN}:{ROUTER}": E18}})
    assert refused_by(decide(inflated)) == {"approval-bounded"}


def test_approval_of_an_unpriced_token_is_refused():
    unknown = w.addr(0x5555)
    al = w.allowlist(w.entry(unknown, "Unpriced", w.Role.TOKEN, w.scopes.token_functions()))
    call = plan(Approve(token=unknown, spender=ROUTER, amount=5))[0]
    d = decide(call, context(allowlist=al))
    assert refused_by(d) == {"approval-bounded"}
    assert "cannot be valued" in d.reason()


def test_approval_value_cap():
    rule_cfg = {"approvals": {"max_value": 100.0}}
    from defiagent.guard.registry import parse_sections

    guard_section, risk_section = parse_sections(rule_cfg, {})
    guard = Guard(build_rules(guard_section, risk_section))
    small = plan(Approve(token=DUSD, spender=ROUTER, amount=50 * E18))[0]
    big = plan(Approve(token=DUSD, spender=ROUTER, amount=500 * E18))[0]
    assert guard.decide(small, context()).allowed
    assert refused_by(guard.decide(big, context())) == {"approval-bounded"}


def test_max_amount_constraint_is_enforced():
    al = w.allowlist()
    token = al.entries[DUSD]
    fn = token.functions[0]
    capped = fn.model_copy(
        update={
            "constraints": [
                *fn.constraints,
                ArgConstraint(arg="amount", kind=ConstraintKind.MAX_AMOUNT, value=str(10 * E18)),
            ]
        }
    )
    al = al.model_copy(
        update={"entries": {**al.entries, DUSD: token.model_copy(update={"functions": [capped]})}}
    )
    call = plan(Approve(token=DUSD, spender=ROUTER, amount=11 * E18))[0]
    assert refused_by(decide(call, context(allowlist=al))) == {"approval-bounded"}


def test_approval_to_a_token_is_refused():
    call = plan(Approve(token=DUSD, spender=DTKN, amount=E18))[0]
    d = decide(call)
    assert refused_by(d) == {"spender-allowlisted"}
    assert "whose role is token" in d.reason()


def test_path_through_an_unknown_token_is_refused():
    unknown = w.addr(0x3333)
    call = plan(
        SwapExactIn(token_in=DTKN, token_out=unknown, amount_in=E18, min_amount_out=1),
        **{DTKN: 10**30},
    )[0]
    assert "tokens-allowlisted" in refused_by(decide(call))


def test_equals_constraint_is_enforced():
    al = w.allowlist()
    router = al.entries[ROUTER]
    fns = list(router.functions)
    fns[0] = fns[0].model_copy(
        update={
            "constraints": [
                *fns[0].constraints,
                ArgConstraint(arg="amountIn", kind=ConstraintKind.EQUALS, value="7"),
            ]
        }
    )
    al = al.model_copy(
        update={"entries": {**al.entries, ROUTER: router.model_copy(update={"functions": fns})}}
    )
    assert refused_by(decide(swap(), context(allowlist=al))) == {"argument-equals"}


def test_far_deadline_is_refused():
    intent = SwapExactIn(
        token_in=DTKN,
        token_out=DUSD,
        amount_in=E18,
        min_amount_out=495 * 10**15,
        deadline_seconds=3600,
    )
    call = plan(intent, **{DTKN: 10**30})[0]
    assert refused_by(decide(call)) == {"deadline-bounded"}
    late = context(block_timestamp=w.NOW + 4000)
    assert "deadline-bounded" in refused_by(decide(swap(), late))


def test_insane_price_is_refused():
    d = decide(swap(), context(market=w.market(checks_ok=False)))
    assert "price-sane" in refused_by(d)
    assert "900 bps" in d.reason()


def test_missing_slippage_bound_is_refused():
    d = decide(swap(min_out=0))
    assert refused_by(d) == {"slippage-bound"}
    assert "10000 bps below" in d.reason()


def test_exact_out_with_a_loose_max_in_is_refused():
    call = plan(
        SwapExactOut(
            token_in=DUSD, token_out=DTKN, amount_out=1_000 * E18, max_amount_in=600 * E18
        ),
        **{DUSD: 10**30},
    )[0]
    assert refused_by(decide(call)) == {"slippage-bound"}


def test_liquidity_minimums_are_checked():
    add = plan(
        AddLiquidity(
            token_a=DUSD,
            token_b=DTKN,
            amount_a=100 * E18,
            amount_b=200 * E18,
            min_amount_a=0,
            min_amount_b=0,
        ),
        **{DUSD: 10**30, DTKN: 10**30},
    )[0]
    assert refused_by(decide(add)) == {"slippage-bound"}
    remove = plan(
        RemoveLiquidity(token_a=DUSD, token_b=DTKN, liquidity=E18, min_amount_a=0, min_amount_b=0),
        **{PAIR: 10**30},
    )[0]
    assert refused_by(decide(remove)) == {"slippage-bound"}


def test_per_transaction_cap():
    d = decide(swap(amount=10_000 * E18))  # 10,000 DTKN = ~5,000 DUSD > 1,000
    assert refused_by(d) == {"value-cap-per-tx"}


def test_per_window_cap():
    assert refused_by(decide(swap(), context(spent_in_window=4_800.0))) == {"value-cap-per-window"}


def test_unpriced_spend_is_refused():
    d = decide(swap(), context(prices={}))
    assert {"value-cap-per-tx", "value-cap-per-window"} <= refused_by(d)


def test_fee_cap():
    spike = FeeQuote(base_fee_per_gas=500 * 10**9, max_priority_fee_per_gas=10**9)
    assert refused_by(decide(swap(), context(fees=spike))) == {"fee-cap"}
    assert refused_by(decide(swap(), context(fees=None))) == {"fee-cap"}


def buy(amount=100 * E18):
    """DUSD (the numeraire) into DTKN: a trade that takes on exposure."""
    min_out = w.market().quote_out([DUSD, DTKN], amount) * 995 // 1000
    intent = SwapExactIn(token_in=DUSD, token_out=DTKN, amount_in=amount, min_amount_out=min_out)
    return plan(intent, **{DUSD: 10**30})[-1]


def test_daily_loss_pauses_trading_but_not_selling_into_the_numeraire():
    risk = RiskState(value_now=100_000.0, loss_pct_in_window=2.5, drawdown_pct=2.5)
    d = decide(buy(), context(risk=risk))
    assert refused_by(d) == {"max-daily-loss"}
    assert "paused" in d.reason()
    assert "2.50%" in d.reason()
    # Giving risk back (an exit into the numeraire) is never paused.
    assert decide(swap(), context(risk=risk)).allowed


def test_drawdown_stops_trading():
    risk = RiskState(value_now=100_000.0, loss_pct_in_window=0.0, drawdown_pct=12.0)
    assert refused_by(decide(buy(), context(risk=risk))) == {"max-drawdown"}
    assert decide(swap(), context(risk=risk)).allowed


def test_unvalued_portfolio_refuses_risk_rules():
    d = decide(buy(), context(risk=RiskState(value_now=None)))
    assert {"max-daily-loss", "max-drawdown"} <= refused_by(d)


def test_concentration_is_refused():
    buy = plan(
        SwapExactIn(token_in=DUSD, token_out=DTKN, amount_in=100 * E18, min_amount_out=199 * E18),
        **{DUSD: 10**30},
    )[0]
    risk = RiskState(
        value_now=100_000.0, loss_pct_in_window=0, drawdown_pct=0, position_values={DTKN: 79_990.0}
    )
    assert refused_by(decide(buy, context(risk=risk))) == {"max-position"}


def test_a_crashing_rule_refuses():
    class Broken(Rule):
        id = "broken"
        title = "Broken"
        description = "always raises"
        severity = Severity.LOW

        def check(self, req: GuardRequest, ctx) -> Verdict:
            raise RuntimeError("boom")

    d = Guard([Broken()], require_floor=False).decide(swap(), context())
    assert not d.allowed
    assert "boom" in d.reason()


def test_wrap_value_counts_against_the_cap():
    call = plan(Wrap(amount=E18))[0]
    assert call.value == E18
    assert call.expected == [
        ExpectedDelta(token=None, min_delta=-E18),
        ExpectedDelta(token=WETH, min_delta=E18),
    ]
    assert "value-cap-per-tx" in refused_by(decide(plan(Wrap(amount=10 * E18))[0]))


def test_a_guard_must_keep_its_floor():
    rules = [r for r in build_rules() if r.id != "function-in-scope"]
    with pytest.raises(ValueError, match="function-in-scope"):
        Guard(rules)


def test_an_undecodable_call_is_refused_once_not_by_every_rule():
    call = swap().model_copy(update={"data": "0xdeadbeef"})
    d = decide(call)
    assert refused_by(d) == {"function-in-scope"}
    recipient = next(v for v in d.verdicts if v.rule == "recipient-is-self")
    assert "not checked" in recipient.reason
