"""Simulation plus checks on the real Uniswap stack: what the agent loop will see."""

from __future__ import annotations

import pytest

from defiagent.execution.models import PlannedCall
from defiagent.simulation.checks import CheckContext, run_checks
from tests.simulation.helpers import approve_call, calldata, swap_call

pytestmark = pytest.mark.slow
ONE = 10**18


def _ctx(sim, allowlist, dex, **extra):
    return CheckContext(
        allowlist=allowlist, tokens=sim.token_meta([dex.token_a, dex.token_b]), **extra
    )


def test_honest_swap_passes_and_a_tight_min_out_is_refused(sim, dex, agent, allowlist):
    approve = approve_call(dex.token_a, dex.router, ONE, agent)
    ok = swap_call(dex, dex.token_a, dex.token_b, ONE, ONE, agent)
    decision = run_checks(ok, sim.simulate(ok, prior_calls=[approve]), _ctx(sim, allowlist, dex))
    assert decision.allowed, decision.reason()

    # The calldata asks for nothing (amountOutMin 0) but the intent wants 3 DTKN: refused.
    greedy = swap_call(dex, dex.token_a, dex.token_b, ONE, 0, agent)
    greedy = greedy.model_copy(
        update={
            "expected": [
                greedy.expected[0],
                greedy.expected[1].model_copy(update={"min_delta": 3 * ONE}),
            ]
        }
    )
    decision = run_checks(
        greedy, sim.simulate(greedy, prior_calls=[approve]), _ctx(sim, allowlist, dex)
    )
    assert not decision.allowed
    assert [v.rule for v in decision.refusals] == ["deltas-within-intent"]
    assert "requires at least 3 DTKN" in decision.reason()


def test_pool_that_is_not_allowlisted_is_refused(sim, dex, agent, allowlist):
    router = allowlist.entries[dex.router].model_copy(update={"allowed_callees": []})
    narrowed = allowlist.model_copy(update={"entries": {**allowlist.entries, dex.router: router}})
    call = swap_call(dex, dex.token_a, dex.token_b, ONE, 0, agent)
    outcome = sim.simulate(call, prior_calls=[approve_call(dex.token_a, dex.router, ONE, agent)])
    decision = run_checks(call, outcome, _ctx(sim, narrowed, dex))
    assert [v.rule for v in decision.refusals] == ["touched-allowlisted"]
    assert dex.pair in decision.reason()


def test_transfer_to_a_stranger_is_refused_as_a_leak(sim, dex, agent, allowlist):
    call = PlannedCall(
        intent_id="r",
        intent_kind="raw-call",
        target=dex.token_a,
        data=calldata(
            "transfer(address,uint256)",
            ["address", "uint256"],
            ["0x000000000000000000000000000000000000bEEF", ONE],
        ),
        sender=agent,
    )
    decision = run_checks(call, sim.simulate(call), _ctx(sim, allowlist, dex))
    assert [v.rule for v in decision.refusals] == ["nothing-else-leaves"]
    assert "1 DUSD leaves the agent" in decision.reason()


def test_unlimited_approval_is_refused(sim, dex, agent, allowlist):
    call = approve_call(dex.token_a, dex.router, 2**256 - 1, agent).model_copy(
        update={"allowed_approvals": {f"{dex.token_a}:{dex.router}": ONE}}
    )
    decision = run_checks(call, sim.simulate(call), _ctx(sim, allowlist, dex))
    assert [v.rule for v in decision.refusals] == ["approvals-within-plan"]
    assert "an unlimited amount" in decision.reason()
