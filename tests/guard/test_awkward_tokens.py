"""Awkward tokens in the planner and the guard (pure, no chain): the approve to 0 that a
USDT-style token needs before an approve when an allowance is left, and the fee-on-transfer
swap. Each control with the call that tries to get around it. On anvil, end to end:
tests/agent/test_awkward_tokens.py."""

from __future__ import annotations

import pytest

from defiagent.allowlist.models import Role
from defiagent.execution.models import PlannedCall
from defiagent.execution.planner import Planner, PlanningError, ProtocolAddresses
from defiagent.guard.base import GuardRequest
from defiagent.guard.calldata import encode_call, parse_signature
from defiagent.market.models import PortfolioSnapshot
from defiagent.protocols.erc20.functions import APPROVE
from defiagent.protocols.uniswap_v2.functions import SWAP_EXACT_IN, SWAP_EXACT_IN_FOT
from defiagent.strategy.intents import Approve, SwapExactIn, SwapExactOut
from tests.guard import world as w
from tests.guard.world import AGENT, DTKN, DUSD, E18, ROUTER, STRANGER, WETH

FEE = 100  # bps DTKN keeps of every transfer, in the tests that declare it
PLAIN = parse_signature(SWAP_EXACT_IN).selector
SUPPORTING = parse_signature(SWAP_EXACT_IN_FOT).selector


def decoded(call: PlannedCall, ctx=None):
    req = GuardRequest.build(call, ctx or w.context())
    assert req.decoded is not None, req.decode_error
    return req.decoded


def portfolio(allowances: dict[tuple[str, str], int]) -> PortfolioSnapshot:
    return PortfolioSnapshot(
        owner=AGENT,
        block_number=100,
        eth_balance=10 * E18,
        balances={DUSD: 50_000 * E18, DTKN: 100_000 * E18},
        allowances={f"{t}:{s}": a for (t, s), a in allowances.items()},
    )


def taxed_allowlist(fee: int | None = FEE):
    dtkn = w.entry(DTKN, "DTKN", Role.TOKEN, w.scopes.token_functions(), transfer_fee_bps=fee)
    return w.allowlist(dtkn)


def fot_planner(fee: int = FEE) -> Planner:
    return Planner(AGENT, ProtocolAddresses(router=ROUTER, weth=WETH), transfer_fees={DTKN: fee})


# ------------------------------------------------------------------- approve to 0 first


def test_a_left_allowance_is_reset_to_zero_before_the_approve():
    quote = w.market().quote_out([DTKN, DUSD], 7 * E18)
    assert quote is not None
    intent = SwapExactIn(
        token_in=DTKN, token_out=DUSD, amount_in=7 * E18, min_amount_out=quote * 995 // 1000
    )
    reset, approve, swap = w.plan(intent, **{DTKN: E18})  # 1 DTKN left: not enough
    assert reset.target == approve.target == DTKN
    assert decoded(reset).args == {"spender": ROUTER, "amount": 0}
    assert reset.allowed_approvals == {f"{DTKN}:{ROUTER}": 0}
    assert decoded(approve).args == {"spender": ROUTER, "amount": 7 * E18}
    assert approve.allowed_approvals == {f"{DTKN}:{ROUTER}": 7 * E18}
    assert decoded(swap).function.name == "swapExactTokensForTokens"
    # Same target and function as the approve, yet its own journal key: never taken for
    # the approve (or the approve for it) when the journal is replayed.
    keys = [c.journal_key for c in (reset, approve, swap)]
    assert len(set(keys)) == 3
    assert keys[0].endswith(":reset-allowance")
    # Every call of the plan passes the guard: the reset is an approval bounded at 0.
    for call in (reset, approve, swap):
        assert w.decide(call).allowed, (call.description, w.decide(call).refusals)


@pytest.mark.parametrize(("left", "calls"), [(0, 2), (7 * E18, 1), (7 * E18 - 1, 3)])
def test_a_reset_only_when_an_allowance_is_left_and_short(left, calls):
    intent = SwapExactIn(token_in=DTKN, token_out=DUSD, amount_in=7 * E18, min_amount_out=3 * E18)
    plan = w.plan(intent, **{DTKN: left})
    assert len(plan) == calls
    resets = [c for c in plan if c.step == "reset-allowance"]
    assert len(resets) == (1 if calls == 3 else 0)


def test_the_strategys_own_approve_is_reset_first_too_but_never_a_zero_one():
    with_left = portfolio({(DUSD, ROUTER): 5})
    reset, approve = w.planner().plan(
        Approve(token=DUSD, spender=ROUTER, amount=10 * E18), w.market(), with_left
    )
    assert decoded(reset).args == {"spender": ROUTER, "amount": 0}
    assert decoded(approve).args == {"spender": ROUTER, "amount": 10 * E18}
    (revoke,) = w.planner().plan(
        Approve(token=DUSD, spender=ROUTER, amount=0), w.market(), with_left
    )
    assert decoded(revoke).args == {"spender": ROUTER, "amount": 0}


def test_the_reset_cannot_approve_a_spender_that_is_not_allowlisted():
    """A strategy asks to approve an outsider it has an allowance for: the reset and the
    approve name the outsider, and the guard refuses both by their spender."""
    left = portfolio({(DUSD, STRANGER): 5})
    plan = w.planner().plan(Approve(token=DUSD, spender=STRANGER, amount=3), w.market(), left)
    assert [decoded(c).args["spender"] for c in plan] == [STRANGER, STRANGER]
    for call in plan:
        decision = w.decide(call)
        assert not decision.allowed
        assert "spender-allowlisted" in w.refused_by(decision)


def test_a_call_labelled_reset_is_bounded_by_what_it_really_approves():
    """The label is no licence: a call that says reset but approves an amount is refused
    (its plan allows 0), and one that resets an outsider while the plan names the router
    is refused by its spender."""
    bounded = {f"{DTKN}:{ROUTER}": 0}

    def forged(spender: str, amount: int) -> PlannedCall:
        return PlannedCall(
            intent_id="x",
            intent_kind="swap-exact-in",
            target=DTKN,
            data=encode_call(APPROVE, [spender, amount]),
            sender=AGENT,
            allowed_approvals=bounded,
            step="reset-allowance",
        )

    assert w.decide(forged(ROUTER, 0)).allowed
    more = w.decide(forged(ROUTER, 1))
    assert "approval-bounded" in w.refused_by(more)
    outsider = w.decide(forged(STRANGER, 0))
    assert {"approval-bounded", "spender-allowlisted"} <= w.refused_by(outsider)


# ------------------------------------------------------------------- fee on transfer


def test_a_declared_fee_token_is_swapped_with_the_routers_fee_on_transfer_twin():
    intent = SwapExactIn(token_in=DTKN, token_out=DUSD, amount_in=7 * E18, min_amount_out=3 * E18)
    (swap,) = fot_planner().plan(intent, w.market(), w.portfolio(**{DTKN: 7 * E18}))
    assert swap.data[:10] == SUPPORTING
    assert swap.transfer_fees == {DTKN: FEE}
    # the same arguments as the plain twin
    args = decoded(swap, w.context(allowlist=taxed_allowlist())).args
    assert args["amountIn"] == 7 * E18
    assert args["path"] == (DTKN, DUSD)
    assert args["to"] == AGENT
    # an undeclared token still takes the plain swap
    (plain,) = w.plan(intent, **{DTKN: 7 * E18})
    assert plain.data[:10] == PLAIN
    assert plain.transfer_fees == {}


def test_no_exact_out_swap_of_a_fee_token():
    for token_in, token_out in ((DTKN, DUSD), (DUSD, DTKN)):
        intent = SwapExactOut(
            token_in=token_in, token_out=token_out, amount_out=E18, max_amount_in=3 * E18
        )
        with pytest.raises(PlanningError, match="keeps a fee on every transfer"):
            fot_planner().plan(intent, w.market(), w.portfolio())


def test_the_fee_twin_has_its_plain_twins_constraints_and_roles():
    router = {f.selector: f for f in w.scopes.router_functions()}
    plain, twin = router[PLAIN], router[SUPPORTING]
    assert twin.constraints == plain.constraints
    assert twin.arg_roles == plain.arg_roles
    # so the guard holds it to the same rules: a foreign recipient is refused
    data = encode_call(SWAP_EXACT_IN_FOT, [7 * E18, 3 * E18, [DTKN, DUSD], STRANGER, w.NOW + 60])
    call = PlannedCall(
        intent_id="x", intent_kind="swap-exact-in", target=ROUTER, data=data, sender=AGENT
    )
    ctx = w.context(allowlist=taxed_allowlist())
    assert "recipient-is-self" in w.refused_by(w.decide(call, ctx))


def _fot_swap(min_out: int, amount_in: int = 7 * E18) -> PlannedCall:
    intent = SwapExactIn(token_in=DTKN, token_out=DUSD, amount_in=amount_in, min_amount_out=min_out)
    (swap,) = fot_planner().plan(intent, w.market(), w.portfolio(**{DTKN: amount_in}))
    return swap


def test_the_slippage_bound_expects_the_declared_fee_and_no_more():
    """The pool receives 7 DTKN less 1%: min-out is held to the quote of what reaches it,
    at the slippage limit (100 bps) and not one unit under; without the declaration the
    same min-out is refused (it is more than 100 bps under the nominal quote)."""
    amount = 7 * E18
    market = w.market()
    net = market.quote_out([DTKN, DUSD], amount - amount * FEE // 10_000)
    floor = net * (10_000 - 100) // 10_000
    taxed = w.context(allowlist=taxed_allowlist())
    assert w.decide(_fot_swap(floor), taxed).allowed
    below = w.decide(_fot_swap(floor - 1), taxed)
    assert w.refused_by(below) == {"slippage-bound"}
    assert "after the declared transfer fees" in below.refusals[0].reason
    undeclared = w.decide(_fot_swap(floor), w.context(allowlist=taxed_allowlist(None)))
    assert "slippage-bound" in w.refused_by(undeclared)


def test_proposed_router_entries_list_each_fee_twin_like_its_plain_twin():
    from defiagent.allowlist.functions import default_functions

    router, _ = default_functions(Role.ROUTER)
    by_name = {f.signature.split("(")[0]: f for f in router}
    for plain in ("swapExactTokensForTokens", "swapExactETHForTokens", "swapExactTokensForETH"):
        twin = by_name[f"{plain}SupportingFeeOnTransferTokens"]
        assert twin.constraints == by_name[plain].constraints
        assert twin.roles == by_name[plain].roles
        assert twin.payable == by_name[plain].payable


@pytest.mark.parametrize(
    ("revert", "hinted"),
    [("UniswapV2: K", True), ("UniswapV2Router: INSUFFICIENT_OUTPUT_AMOUNT", False)],
)
def test_a_k_revert_says_a_token_keeps_a_fee_and_how_to_declare_it(revert, hinted):
    from defiagent.simulation.checks import CheckContext
    from defiagent.simulation.checks.tx_succeeded import TxSucceeded
    from defiagent.simulation.models import SimulationOutcome

    outcome = SimulationOutcome(success=False, revert_reason=revert, gas_used=1, block_number=7)
    (swap,) = w.plan(
        SwapExactIn(token_in=DTKN, token_out=DUSD, amount_in=E18, min_amount_out=1),
        **{DTKN: E18},
    )
    verdict = TxSucceeded().check(swap, outcome, CheckContext(allowlist=w.allowlist()))
    assert not verdict.allowed
    assert revert in verdict.reason
    assert ("(transfer_fee_bps)" in verdict.reason) is hinted
