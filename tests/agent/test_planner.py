"""The planner: each intent kind becomes the right call(s), exact approvals first."""

from __future__ import annotations

import pytest

from defiagent.execution.models import ExpectedDelta
from defiagent.execution.planner import PlanningError
from defiagent.guard.base import GuardRequest
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
from tests.guard.world import AGENT, DTKN, DUSD, E18, PAIR, ROUTER, STRANGER, WETH, plan

ALLOWLIST = w.allowlist()


def decoded(call):
    req = GuardRequest.build(call, w.context(allowlist=ALLOWLIST))
    assert req.decoded is not None, req.decode_error
    return req.decoded


def test_swap_exact_in_needs_an_exact_approve_first():
    intent = SwapExactIn(token_in=DTKN, token_out=DUSD, amount_in=7 * E18, min_amount_out=3 * E18)
    approve, swap = plan(intent)  # nothing allowed (1 DTKN left: a reset to 0 first, see
    # tests/guard/test_awkward_tokens.py)
    assert approve.target == DTKN
    a = decoded(approve)
    assert a.function.name == "approve"
    assert a.args == {"spender": ROUTER, "amount": 7 * E18}
    assert approve.allowed_approvals == {f"{DTKN}:{ROUTER}": 7 * E18}
    s = decoded(swap)
    assert swap.target == ROUTER
    assert s.function.name == "swapExactTokensForTokens"
    assert s.args["amountIn"] == 7 * E18
    assert s.args["amountOutMin"] == 3 * E18
    assert s.args["path"] == (DTKN, DUSD)
    assert s.args["to"] == AGENT
    assert s.args["deadline"] == w.NOW + intent.deadline_seconds
    assert swap.expected == [
        ExpectedDelta(token=DTKN, min_delta=-7 * E18),
        ExpectedDelta(token=DUSD, min_delta=3 * E18),
    ]
    assert all(c.intent_id == intent.id and c.sender == AGENT for c in (approve, swap))


def test_no_approve_when_the_allowance_suffices():
    intent = SwapExactIn(token_in=DTKN, token_out=DUSD, amount_in=7 * E18, min_amount_out=1)
    (swap,) = plan(intent, **{DTKN: 7 * E18})
    assert swap.target == ROUTER


def test_route_through_weth_when_there_is_no_direct_pool():
    intent = SwapExactIn(token_in=DTKN, token_out=WETH, amount_in=E18, min_amount_out=1)
    (swap,) = plan(intent, **{DTKN: E18})
    assert decoded(swap).args["path"] == (DTKN, DUSD, WETH) or decoded(swap).args["path"] == (
        DTKN,
        WETH,
    )


def test_swap_exact_out_approves_the_max_in():
    intent = SwapExactOut(token_in=DUSD, token_out=DTKN, amount_out=10 * E18, max_amount_in=6 * E18)
    approve, swap = plan(intent)
    assert decoded(approve).args["amount"] == 6 * E18
    s = decoded(swap)
    assert s.function.name == "swapTokensForExactTokens"
    assert (s.args["amountOut"], s.args["amountInMax"]) == (10 * E18, 6 * E18)
    assert swap.expected[0] == ExpectedDelta(token=DUSD, min_delta=-6 * E18)


def test_foreign_recipient_is_encoded_for_the_guard_to_see():
    intent = SwapExactIn(
        token_in=DTKN, token_out=DUSD, amount_in=E18, min_amount_out=1, recipient=STRANGER
    )
    assert decoded(plan(intent, **{DTKN: E18})[0]).args["to"] == STRANGER


def test_approve_intent():
    (call,) = plan(Approve(token=DUSD, spender=ROUTER, amount=5))
    assert decoded(call).args == {"spender": ROUTER, "amount": 5}
    assert call.allowed_approvals == {f"{DUSD}:{ROUTER}": 5}


def test_wrap_and_unwrap():
    (wrap,) = plan(Wrap(amount=3))
    assert (wrap.target, wrap.value, wrap.data) == (WETH, 3, "0xd0e30db0")
    assert decoded(wrap).function.name == "deposit"
    (unwrap,) = plan(Unwrap(amount=3))
    assert unwrap.value == 0
    assert decoded(unwrap).args == {"wad": 3}
    assert unwrap.expected == [
        ExpectedDelta(token=WETH, min_delta=-3),
        ExpectedDelta(token=None, min_delta=3),
    ]


def test_add_liquidity_approves_both_sides():
    intent = AddLiquidity(
        token_a=DUSD,
        token_b=DTKN,
        amount_a=10 * E18,
        amount_b=20 * E18,
        min_amount_a=9 * E18,
        min_amount_b=18 * E18,
    )
    approve_a, approve_b, add = plan(intent)
    assert (approve_a.target, approve_b.target) == (DUSD, DTKN)
    args = decoded(add).args
    assert args["amountADesired"] == 10 * E18
    assert args["amountBMin"] == 18 * E18
    assert ExpectedDelta(token=PAIR, min_delta=1) in add.expected


def test_remove_liquidity_approves_the_lp_token():
    intent = RemoveLiquidity(
        token_a=DUSD, token_b=DTKN, liquidity=E18, min_amount_a=1, min_amount_b=2
    )
    approve, remove = plan(intent)
    assert approve.target == PAIR
    assert decoded(approve).args["value"] == E18
    assert decoded(remove).args["liquidity"] == E18
    assert ExpectedDelta(token=PAIR, min_delta=-E18) in remove.expected


def test_liquidity_without_a_pool_is_not_planned():
    other = w.addr(0x4444)
    intent = AddLiquidity(
        token_a=DUSD, token_b=other, amount_a=1, amount_b=1, min_amount_a=1, min_amount_b=1
    )
    with pytest.raises(PlanningError, match="no known pool"):
        plan(intent)


def test_raw_call_is_passed_through_verbatim_for_the_guard_to_refuse():
    (call,) = plan(RawCall(target=STRANGER, data="0xdeadbeef", value=5))
    assert (call.target, call.data, call.value, call.intent_kind) == (
        STRANGER,
        "0xdeadbeef",
        5,
        "raw-call",
    )
    assert call.expected == []


def test_spend_and_losses_survive_a_restart(tmp_path):
    from defiagent.agent.state import SpendLedger
    from defiagent.risk.pnl import PortfolioHistory

    ledger = SpendLedger(3600, tmp_path / "spend.jsonl")
    ledger.add(1000.0, 400.0)
    ledger.add(2000.0, 100.0)
    again = SpendLedger(3600, tmp_path / "spend.jsonl")
    assert again.spent(2500.0) == 500.0
    assert again.spent(5700.0) == 0.0  # both fell out of the window

    history = PortfolioHistory(loss_window_seconds=86_400, path=tmp_path / "portfolio.jsonl")
    history.record(0.0, 100_000.0)
    restarted = PortfolioHistory(loss_window_seconds=86_400, path=tmp_path / "portfolio.jsonl")
    state = restarted.state(60.0, 97_000.0)
    assert state.loss_pct_in_window == pytest.approx(3.0)
    assert state.drawdown_pct == pytest.approx(3.0)
