"""Through the whole agent (AgentRuntime, as tests/agent do): a pool manipulated by a large
swap mined right before the tick; the strategy's swap is refused by `price-sane`, the
reason carries the figures, the audit log keeps every source's answer, nothing is sent."""

from __future__ import annotations

import json
import re
import secrets

import pytest
from eth_account import Account

from defiagent.agent.devnet import UNIT, fund
from defiagent.devchain.deploy import swap_exact_in
from defiagent.signing.keystore import KeystoreSigner, write_keystore
from defiagent.strategy.intents import SwapExactIn

E18 = 10**18


@pytest.fixture(scope="module")
def signer(cw3, market, tmp_path_factory):
    """The agent holds ETH and DUSD only: with the DTKN pool refused, its portfolio can still
    be valued (through the sane WETH/DUSD pool), so the risk limits let the intent through
    to the guard, where `price-sane` must refuse it."""
    path = tmp_path_factory.mktemp("key") / "agent.json"
    password = secrets.token_urlsafe(16)
    write_keystore(path, bytes(Account.create().key), password, light=True)
    s = KeystoreSigner(path, password)
    fund(cw3, market, s.address, eth=10 * UNIT, dusd=50_000 * UNIT)
    return s


class Buyer:
    """Proposes one DUSD -> DTKN swap, quoted from the (manipulated) snapshot it is given."""

    name = "buyer"

    def __init__(self, market, amount=500 * E18):
        self.market, self.amount, self.done = market, amount, False

    def describe(self) -> str:
        return "buyer (test)"

    def propose(self, snapshot, portfolio):
        if self.done:
            return []
        self.done = True
        m = self.market
        out = snapshot.quote_out([m.dusd, m.dtkn], self.amount)
        return [
            SwapExactIn(
                token_in=m.dusd,
                token_out=m.dtkn,
                amount_in=self.amount,
                min_amount_out=out * 99 // 100,
                reason="test: buy the dip",
            )
        ]


def test_a_swap_after_a_one_block_manipulation_is_refused_by_price_sane(
    start_agent, cw3, market, signer
):
    runtime = start_agent([Buyer(market)])
    nonce = cw3.eth.get_transaction_count(signer.address)
    # Someone dumps DTKN into the pool, mined right before the agent's tick.
    swap_exact_in(cw3, market.dex, market.dtkn, market.dusd, 300_000 * E18)
    report = runtime.agent.tick()
    assert report.skipped is None
    [intent] = report.intents
    assert intent.status == "refused"
    price = [r for r in intent.refusals if r.rule == "price-sane"]
    assert price, intent.refusals
    reason = price[0].reason
    assert re.search(r"spot [\d.]+ deviates \d+ bps from the uniswap-v2-twap reference", reason)
    assert "(limit 400 bps; age 0s, limit 600s)" in reason
    assert cw3.eth.get_transaction_count(signer.address) == nonce  # nothing signed or sent
    (alert,) = [a for a in runtime.alerts.sent if a.kind == "price-sanity"]
    assert alert.detail == reason  # the operator sees the same figures

    snapshots = [
        json.loads(line)
        for line in runtime.audit_path.read_text().splitlines()
        if json.loads(line)["kind"] == "snapshot"
    ]
    checks = snapshots[-1]["payload"]["price_checks"]
    dtkn_check = next(c for c in checks if not c["ok"])
    [twap] = dtkn_check["sources"]
    assert twap["source"] == "uniswap-v2-twap"
    assert twap["deviation_bps"] > 400
    assert dtkn_check["agreeing_sources"] == 1
    assert dtkn_check["min_sources"] == 2
