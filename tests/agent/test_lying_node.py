"""A node that lies consistently about a pool (getReserves halved on one side, the cumulative
prices scaled to match, so spot and TWAP agree and price sanity passes): the planner's
min-out follows the lie, and the fork, which runs the pool's code on its real storage, pays
twice as much. The requote check refuses the swap; nothing is signed."""

from __future__ import annotations

import pytest

from tests.agent.test_approvals_left import SellOnce
from tests.agent.test_quorum import GET_RESERVES, Provider

pytestmark = pytest.mark.slow
PRICE0 = "0x5909c0d5"  # price0CumulativeLast()
PRICE1 = "0x5a3d5493"  # price1CumulativeLast()
U256 = 2**256


class ConsistentLiar(Provider):
    """reserve0 halved in every getReserves answer; price0 accumulated twice as fast and
    price1 half as fast, as they would have been with those reserves all along."""

    @staticmethod
    def _rewrite(request, answer):
        pairs = (
            zip(request, answer, strict=True) if isinstance(request, list) else [(request, answer)]
        )
        for req, ans in pairs:
            params = req.get("params") or [{}]
            if req.get("method") != "eth_call" or not isinstance(params[0], dict):
                continue
            selector = params[0].get("data", "")[:10]
            word = ans.get("result", "0x")[2:]
            if selector == GET_RESERVES and len(word) >= 192:
                ans["result"] = "0x" + f"{int(word[:64], 16) // 2:064x}" + word[64:]
            elif selector == PRICE0 and len(word) == 64:
                ans["result"] = "0x" + f"{int(word, 16) * 2 % U256:064x}"
            elif selector == PRICE1 and len(word) == 64:
                ans["result"] = "0x" + f"{int(word, 16) // 2:064x}"
        return answer


def test_a_consistently_lying_node_is_caught_by_the_requote(
    start_agent, chain, cw3, market, signer
):
    liar = ConsistentLiar(chain.url, lie=True)
    try:
        before = cw3.eth.get_transaction_count(signer.address)
        runtime = start_agent([SellOnce(market)], rpc_url=liar.url)
        report = runtime.agent.tick()
        assert report.skipped is None, report.skipped
        (sell,) = report.intents
        # price sanity passed (spot and TWAP agree in the lie), so it reached the fork
        assert sell.status == "refused", sell
        assert sell.stage == "outcome"
        assert sell.first_rule == "requote-agrees", sell.refusals
        assert "the RPC's view of the pool is not the pool's state" in sell.refusals[0].reason
        assert cw3.eth.get_transaction_count(signer.address) == before
    finally:
        liar.close()


def test_an_honest_node_passes_the_requote(start_agent, chain, market):
    honest = ConsistentLiar(chain.url, lie=False)
    try:
        runtime = start_agent([SellOnce(market)], rpc_url=honest.url)
        (sell,) = runtime.agent.tick().intents
        assert sell.status == "executed", sell.refusals
    finally:
        honest.close()


def test_without_the_requote_the_lie_would_be_signed(start_agent, chain, cw3, market, signer):
    """The control that matters: every other check passes the lying node's swap."""
    liar = ConsistentLiar(chain.url, lie=True)
    try:
        runtime = start_agent([SellOnce(market)], rpc_url=liar.url)
        runtime.agent.p.requote_max_bps = 1e12
        (sell,) = runtime.agent.tick().intents
        assert sell.status == "executed", sell.refusals
    finally:
        liar.close()
