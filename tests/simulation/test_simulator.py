"""The simulator runs the exact call on a fork and reports what it would do to the agent."""

from __future__ import annotations

import pytest

from defiagent.errors import InfraError
from defiagent.execution.models import ExpectedDelta, PlannedCall
from defiagent.simulation import ForkManager, Simulator
from defiagent.simulation.models import ETH
from tests.simulation.helpers import approve_call, calldata, swap_call

pytestmark = pytest.mark.slow  # every test here runs against real anvil processes

ONE = 10**18


def test_approve_then_swap_measures_deltas_and_every_touched_contract(sim, dex, agent):
    approve = approve_call(dex.token_a, dex.router, ONE, agent)
    swap = swap_call(dex, dex.token_a, dex.token_b, ONE, 0, agent)

    outcome = sim.simulate(swap, prior_calls=[approve])

    assert outcome.success, outcome.revert_reason
    assert outcome.deltas[dex.token_a] == -ONE
    # Constant-product quote with the 0.3% fee, pool 1e24 : 2e24.
    quote = (ONE * 997 * 2 * 10**24) // (10**24 * 1000 + ONE * 997)
    assert outcome.deltas[dex.token_b] == quote
    assert set(outcome.touched) == {dex.router, dex.pair, dex.token_a, dex.token_b}
    assert outcome.gas_used > 21_000
    assert outcome.sender == agent


def test_sequence_reports_each_call_on_the_state_the_previous_left(sim, dex, agent):
    approve = approve_call(dex.token_a, dex.router, ONE, agent)
    swap = swap_call(dex, dex.token_a, dex.token_b, ONE, 0, agent)

    first, second = sim.simulate_sequence([approve, swap])

    assert [(a.token, a.spender, a.allowance) for a in first.approvals] == [
        (dex.token_a, dex.router, ONE)
    ]
    assert first.touched == [dex.token_a]
    assert second.success
    assert dex.token_b in second.touched  # only reached because the approve ran first


def test_simulation_leaves_the_fork_untouched(sim, fork, dex, agent):
    rpc = fork.rpc
    before = (rpc.call("eth_blockNumber"), rpc.call("eth_getTransactionCount", agent, "latest"))
    sim.simulate(
        swap_call(dex, dex.token_a, dex.token_b, ONE, 0, agent),
        prior_calls=[approve_call(dex.token_a, dex.router, ONE, agent)],
    )
    allowance = calldata("allowance(address,address)", ["address", "address"], [agent, dex.router])
    after = (rpc.call("eth_blockNumber"), rpc.call("eth_getTransactionCount", agent, "latest"))
    assert after == before
    assert int(rpc.call("eth_call", {"to": dex.token_a, "data": allowance}, "latest"), 16) == 0


def test_revert_reason_is_decoded(sim, dex, agent):
    swap = swap_call(dex, dex.token_a, dex.token_b, ONE, 0, agent)  # no approval

    outcome = sim.simulate(swap)

    assert not outcome.success
    assert outcome.revert_reason == "TransferHelper: TRANSFER_FROM_FAILED"
    assert outcome.deltas == {}


def test_failed_prior_call_fails_the_outcome(sim, dex, agent):
    bad_approve = PlannedCall(
        intent_id="x",
        intent_kind="approve",
        target=dex.token_a,
        data="0xdeadbeef",  # no such function: the token reverts
        sender=agent,
        description="broken approve",
    )
    outcome = sim.simulate(
        swap_call(dex, dex.token_a, dex.token_b, ONE, 0, agent), prior_calls=[bad_approve]
    )
    assert not outcome.success
    assert "prior call 1 (broken approve) reverted" in outcome.revert_reason


def test_eth_value_moves_are_reported_without_gas(sim, dex, agent):
    wrap = PlannedCall(
        intent_id="w",
        intent_kind="wrap",
        target=dex.weth,
        data="0xd0e30db0",  # deposit()
        value=ONE,
        sender=agent,
        expected=[
            ExpectedDelta(token=None, min_delta=-ONE),
            ExpectedDelta(token=dex.weth, min_delta=ONE),
        ],
    )
    outcome = sim.simulate(wrap)
    assert outcome.deltas == {ETH: -ONE, dex.weth: ONE}


def test_a_token_the_plan_does_not_name_is_seen_leaving(sim, dex, agent):
    # A "raw call" that hands token_a to someone else, with no expected deltas at all.
    thief = "0x000000000000000000000000000000000000bEEF"
    steal = PlannedCall(
        intent_id="r",
        intent_kind="raw-call",
        target=dex.token_a,
        data=calldata("transfer(address,uint256)", ["address", "uint256"], [thief, 5 * ONE]),
        sender=agent,
    )
    assert sim.simulate(steal).deltas == {dex.token_a: -5 * ONE}


def test_fork_follows_upstream_state(sim, fork, up_w3, dex, agent):
    start = fork.sync()
    up_w3.eth.wait_for_transaction_receipt(
        up_w3.eth.send_transaction({"from": dex.deployer, "to": agent, "value": 1})
    )
    swap = swap_call(dex, dex.token_a, dex.token_b, ONE, 0, agent)
    outcome = sim.simulate(swap, prior_calls=[approve_call(dex.token_a, dex.router, ONE, agent)])
    assert outcome.block_number == start + 1 == fork.block_number
    assert int(fork.rpc.call("eth_getBalance", agent, "latest"), 16) == up_w3.eth.get_balance(agent)


def test_token_meta_reads_symbols(sim, dex):
    meta = sim.token_meta([dex.token_a, dex.token_b])
    assert (meta[dex.token_a].symbol, meta[dex.token_a].decimals) == ("DUSD", 18)
    assert meta[dex.token_b].symbol == "DTKN"


def test_dead_fork_raises_infra_error(upstream, dex, agent, tmp_path):
    fork = ForkManager(upstream.url, log_dir=tmp_path).start()
    sim = Simulator(fork, sync=False)
    fork._anvil.stop()  # the fork process dies under the simulator
    try:
        with pytest.raises(InfraError, match="simulation could not run"):
            sim.simulate(approve_call(dex.token_a, dex.router, ONE, agent))
    finally:
        fork.stop()
