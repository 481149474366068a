"""Outcome checks: each refuses what it exists to refuse, with a reason naming the asset."""

from __future__ import annotations

import pytest

from defiagent.allowlist.models import ActiveAllowlist, ProxyInfo, ProxyKind, Role
from defiagent.execution.models import ExpectedDelta, PlannedCall
from defiagent.simulation.checks import ALL_CHECKS, CheckContext, describe, run_checks
from defiagent.simulation.checks.approvals_within_plan import ApprovalsWithinPlan
from defiagent.simulation.checks.base import OutcomeCheck
from defiagent.simulation.checks.deltas_within_intent import DeltasWithinIntent
from defiagent.simulation.checks.gas_under_cap import GasUnderCap
from defiagent.simulation.checks.nothing_else_leaves import NothingElseLeaves
from defiagent.simulation.checks.touched_allowlisted import TouchedAllowlisted
from defiagent.simulation.checks.tx_succeeded import TxSucceeded
from defiagent.simulation.models import ETH, ApprovalChange, SimulationOutcome, TokenMeta
from tests.simulation.conftest import entry

AGENT = "0x00000000000000000000000000000000000a6E17"
ROUTER = "0x1111111111111111111111111111111111111111"
USD = "0x2222222222222222222222222222222222222222"
TKN = "0x3333333333333333333333333333333333333333"
PAIR = "0x4444444444444444444444444444444444444444"
EVIL = "0x5555555555555555555555555555555555555555"
PROXY = "0x6666666666666666666666666666666666666666"
IMPL = "0x7777777777777777777777777777777777777777"
ONE = 10**18


def ctx(**extra) -> CheckContext:
    entries = [
        entry(ROUTER, "Router", Role.ROUTER, allowed_callees=[PAIR]),
        entry(USD, "Demo USD", Role.TOKEN),
        entry(TKN, "Demo Token", Role.TOKEN),
        entry(
            PROXY,
            "Proxied token",
            Role.TOKEN,
            proxy=ProxyInfo(
                kind=ProxyKind.EIP1967,
                implementation=IMPL,
                implementation_codehash="0x" + "11" * 32,
            ),
        ),
    ]
    allowlist = ActiveAllowlist(chain_id=31337, entries={e.address: e for e in entries})
    tokens = {
        USD: TokenMeta(symbol="DUSD", decimals=18),
        TKN: TokenMeta(symbol="DTKN", decimals=18),
    }
    return CheckContext(allowlist=allowlist, tokens=tokens, **extra)


def swap(**extra) -> PlannedCall:
    fields = {
        "intent_id": "i1",
        "intent_kind": "swap-exact-in",
        "target": ROUTER,
        "data": "0x",
        "sender": AGENT,
        "expected": [
            ExpectedDelta(token=USD, min_delta=-10 * ONE),
            ExpectedDelta(token=TKN, min_delta=19 * ONE),
        ],
        "description": "swap 10 DUSD for at least 19 DTKN",
    } | extra
    return PlannedCall(**fields)


def outcome(**extra) -> SimulationOutcome:
    fields = {
        "success": True,
        "gas_used": 120_000,
        "block_number": 7,
        "deltas": {USD: -10 * ONE, TKN: 19_900_000_000_000_000_000},
        "touched": [ROUTER, PAIR, USD, TKN],
        "sender": AGENT,
        "fork_codehashes": dict.fromkeys([ROUTER, PAIR, USD, TKN], "0x" + "00" * 32),
    } | extra
    return SimulationOutcome(**fields)


def test_a_good_swap_passes_every_check():
    decision = run_checks(swap(), outcome(), ctx())
    assert decision.allowed, decision.reason()
    assert [v.rule for v in decision.verdicts] == [c.id for c in ALL_CHECKS]


def test_registry_metadata_is_complete_and_unique():
    ids = [c["id"] for c in describe()]
    assert len(ids) == len(set(ids)) >= 6
    for check in ALL_CHECKS:
        assert issubclass(check, OutcomeCheck)
        assert check.description
        assert check.rationale
        assert check.severity


def test_revert_is_refused_with_its_reason():
    verdict = TxSucceeded().check(swap(), outcome(success=False, revert_reason="K"), ctx())
    assert not verdict.allowed
    assert "reverts on the fork at block 7: K" in verdict.reason


def test_less_than_min_out_is_refused_naming_token_and_amounts():
    verdict = DeltasWithinIntent().check(
        swap(), outcome(deltas={USD: -10 * ONE, TKN: 18_500_000_000_000_000_000}), ctx()
    )
    assert not verdict.allowed
    assert (
        verdict.reason == "the agent receives 18.5 DTKN, but the intent requires at least 19 DTKN"
    )


def test_spending_more_than_max_in_is_refused():
    verdict = DeltasWithinIntent().check(
        swap(), outcome(deltas={USD: -11 * ONE, TKN: 20 * ONE}), ctx()
    )
    assert not verdict.allowed
    assert "spends 11 DUSD, but the intent allows at most 10 DUSD" in verdict.reason


def test_expected_receipt_that_never_arrives_is_refused():
    verdict = DeltasWithinIntent().check(swap(), outcome(deltas={USD: -10 * ONE}), ctx())
    assert "receives 0 DTKN" in verdict.reason


@pytest.mark.parametrize(
    ("asset", "needle"),
    [(ETH, "0.5 ETH leaves the agent"), (EVIL, f"500000000000000000 base units of token {EVIL}")],
)
def test_any_other_asset_leaving_is_refused(asset, needle):
    deltas = {USD: -10 * ONE, TKN: 20 * ONE, asset: -(ONE // 2)}
    verdict = NothingElseLeaves().check(swap(), outcome(deltas=deltas), ctx())
    assert not verdict.allowed
    assert needle in verdict.reason


def test_assets_arriving_unasked_are_not_a_leak():
    verdict = NothingElseLeaves().check(
        swap(), outcome(deltas={USD: -ONE, TKN: ONE, EVIL: 5}), ctx()
    )
    assert verdict.allowed


def test_approval_not_in_the_plan_is_refused():
    approval = ApprovalChange(token=USD, owner=AGENT, spender=EVIL, allowance=2**256 - 1)
    verdict = ApprovalsWithinPlan().check(swap(), outcome(approvals=[approval]), ctx())
    assert not verdict.allowed
    assert f"approves {EVIL} to spend an unlimited amount of DUSD" in verdict.reason


def test_approval_larger_than_planned_is_refused_and_equal_is_allowed():
    call = swap(allowed_approvals={f"{USD.lower()}:{ROUTER}": 10 * ONE})
    exact = ApprovalChange(token=USD, owner=AGENT, spender=ROUTER, allowance=10 * ONE)
    larger = exact.model_copy(update={"allowance": 11 * ONE})
    assert ApprovalsWithinPlan().check(call, outcome(approvals=[exact]), ctx()).allowed
    verdict = ApprovalsWithinPlan().check(call, outcome(approvals=[larger]), ctx())
    assert "spend 11 DUSD, more than the 10 DUSD the plan allows" in verdict.reason


def test_unlisted_contract_in_the_trace_is_refused():
    verdict = TouchedAllowlisted().check(swap(), outcome(touched=[ROUTER, PAIR, EVIL]), ctx())
    assert not verdict.allowed
    assert EVIL in verdict.reason
    assert PAIR not in verdict.reason


def test_callee_of_another_entry_is_not_a_callee_of_this_one():
    # PAIR is allowed as the router's callee, not when the call targets a token.
    call = swap(target=USD)
    assert not TouchedAllowlisted().check(call, outcome(touched=[USD, PAIR]), ctx()).allowed


def test_pinned_proxy_implementation_is_allowed_and_revoked_entry_is_not():
    assert TouchedAllowlisted().check(swap(), outcome(touched=[ROUTER, PROXY, IMPL]), ctx()).allowed
    base = ctx()
    revoked = base.allowlist.entries[TKN].model_copy(update={"revoked": True})
    allowlist = base.allowlist.model_copy(
        update={"entries": {**base.allowlist.entries, TKN: revoked}}
    )
    verdict = TouchedAllowlisted().check(
        swap(), outcome(), base.model_copy(update={"allowlist": allowlist})
    )
    assert not verdict.allowed
    assert TKN in verdict.reason


def test_gas_over_cap_is_refused():
    verdict = GasUnderCap().check(swap(), outcome(gas_used=2_000_000), ctx(max_gas=500_000))
    assert (
        verdict.reason == "the transaction uses 2,000,000 gas on the fork, above the cap of 500,000"
    )


def test_a_check_that_crashes_refuses():
    class Broken(OutcomeCheck):
        id = "broken"
        description = "always crashes"

        def check(self, call, outcome, ctx):
            raise RuntimeError("boom")

    decision = run_checks(swap(), outcome(), ctx(), checks=[Broken])
    assert not decision.allowed
    assert "could not run (RuntimeError: boom)" in decision.reason()
