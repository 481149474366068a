"""Swap venues on a real chain: a V2 multi-hop through `via` trades end to end; a venue the
registry lacks, or fee tiers on a venue without them, is refused at planning, unsent."""

from __future__ import annotations

import pytest

from defiagent.strategy.intents import SwapExactIn, SwapExactOut

pytestmark = pytest.mark.slow
E18 = 10**18


def weth_balance(cw3, market, owner) -> int:
    abi = [
        {
            "name": "balanceOf",
            "type": "function",
            "stateMutability": "view",
            "inputs": [{"name": "a", "type": "address"}],
            "outputs": [{"name": "", "type": "uint256"}],
        }
    ]
    return cw3.eth.contract(address=market.dex.weth, abi=abi).functions.balanceOf(owner).call()


class Venues:
    """One tick of swaps quoted from the snapshot it is given: the intents under test."""

    name = "venues"

    def __init__(self, market, amount=1_000 * E18):
        self.m = market
        self.amount = amount
        self.done = False
        self.quoted = 0

    def describe(self) -> str:
        return "venues (test)"

    def propose(self, snapshot, portfolio):
        if self.done:
            return []
        self.done = True
        m, weth = self.m, self.m.dex.weth
        # DTKN -> DUSD -> WETH: no DTKN/WETH pool, so the route is the strategy's own `via`.
        self.quoted = snapshot.quote_out([m.dtkn, m.dusd, weth], self.amount)
        hop = {"token_in": m.dtkn, "token_out": weth, "amount_in": self.amount}
        return [
            SwapExactIn(**hop, min_amount_out=self.quoted * 99 // 100, via=[m.dusd], reason="via"),
            SwapExactIn(**hop, min_amount_out=1, venue="sushiswap", reason="unknown venue"),
            SwapExactIn(**hop, min_amount_out=1, fees=[3000], reason="fees on v2"),
            SwapExactOut(
                token_in=m.dtkn,
                token_out=weth,
                amount_out=E18,
                max_amount_in=10**30,
                via=[m.dusd, m.dtkn],  # visits DTKN twice
                reason="loop",
            ),
            # The same route with a min-out far above the quote: the guard still judges it.
            SwapExactIn(**hop, min_amount_out=1, via=[m.dusd], reason="no minimum"),
        ]


def test_venues_and_multi_hop_via(start_agent, cw3, market, signer):
    before = weth_balance(cw3, market, signer.address)
    strategy = Venues(market)
    runtime = start_agent([strategy])
    report = runtime.agent.tick()
    by_why = {i.why: i for i in report.intents}

    via = by_why["via"]
    assert via.status == "executed", via.refusals
    gained = weth_balance(cw3, market, signer.address) - before
    assert gained >= strategy.quoted * 99 // 100
    assert any("at least" in step for step in via.plan)

    unknown = by_why["unknown venue"]
    assert (unknown.status, unknown.stage) == ("refused", "plan")
    assert unknown.refusals[0].reason.startswith("venue 'sushiswap' is not a protocol")
    assert "uniswap-v2" in unknown.refusals[0].reason
    assert not unknown.tx_hashes

    fees = by_why["fees on v2"]
    assert (fees.status, fees.stage) == ("refused", "plan")
    assert "has no fee tiers" in fees.refusals[0].reason

    loop = by_why["loop"]
    assert (loop.status, loop.stage) == ("refused", "plan")
    assert "visits a token twice" in loop.refusals[0].reason

    # A multi-hop path is quoted hop by hop for the slippage bound, like a direct one.
    loose = by_why["no minimum"]
    assert loose.status == "refused"
    assert "slippage-bound" in {r.rule for r in loose.refusals}
