"""An approval mined for a plan whose later call is then refused or fails is revoked through
the guarded path, so no allowance is left behind for the router to pull later."""

from __future__ import annotations

import json

import pytest

from defiagent.agent.ports import ExecutionResult
from defiagent.market.reader import ChainReader
from defiagent.strategy.intents import SwapExactIn

pytestmark = pytest.mark.slow
E18 = 10**18


class SellOnce:
    name = "seller"

    def __init__(self, market) -> None:
        self.market = market
        self.done = False

    def describe(self) -> str:
        return "sells DTKN once"

    def propose(self, snapshot, portfolio):
        if self.done:
            return []
        self.done = True
        m, amount = self.market, 1_000 * E18
        return [
            SwapExactIn(
                token_in=m.dtkn,
                token_out=m.dusd,
                amount_in=amount,
                min_amount_out=snapshot.quote_out([m.dtkn, m.dusd], amount) * 99 // 100,
            )
        ]


@pytest.mark.parametrize("how", ["refused", "reverted"])
def test_an_approval_left_by_a_refused_swap_is_revoked(start_agent, cw3, market, signer, how):
    runtime = start_agent([SellOnce(market)])
    executor = runtime.agent.p.executor
    real = executor.execute
    calls = []

    def execute(call, outcome):
        calls.append(call)
        if len(calls) == 2:  # the swap, after its approve was mined
            return ExecutionResult(status=how, reason=f"test: the swap was {how}")
        return real(call, outcome)

    executor.execute = execute
    report = runtime.agent.tick()
    sell, revoke = report.intents
    assert sell.status == ("refused" if how == "refused" else "failed")
    assert len(sell.tx_hashes) == 1  # the approve was mined
    assert revoke.kind == "approve"
    assert revoke.status == "executed", revoke.refusals
    assert "revoke the approval left behind" in revoke.why
    reader = ChainReader(cw3)
    assert reader.allowance(market.dtkn, signer.address, market.dex.router) == 0
    kinds = [json.loads(line)["kind"] for line in runtime.audit_path.read_text().splitlines()]
    assert "approval-revoke" in kinds


def test_nothing_to_revoke_when_the_whole_plan_executed(start_agent, cw3, market, signer):
    runtime = start_agent([SellOnce(market)])
    report = runtime.agent.tick()
    (sell,) = report.intents
    assert sell.status == "executed"
    # the swap spent the exact approval: nothing left, nothing revoked
    assert ChainReader(cw3).allowance(market.dtkn, signer.address, market.dex.router) == 0
