"""The agent itself ([broadcast] mode = "private" through AgentRuntime) trading through the
relay emulator: each transaction of an honest swap goes to the relay, none to the mempool."""

from __future__ import annotations

import pytest

from defiagent.broadcast import BroadcastConfig
from defiagent.broadcast.demo import demo_relay, relay_use
from tests.agent.test_agent_on_chain import Honest, kinds

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def relay(chain):
    with demo_relay(chain.url) as server:
        yield server


def test_an_honest_swap_goes_through_the_private_relay(start_agent, market, cw3, relay):
    private = BroadcastConfig(mode="private", relay_url=relay.url)
    runtime = start_agent([Honest(market)], broadcast=private)
    report = runtime.agent.tick()
    (intent,) = report.intents
    assert intent.status == "executed", intent.refusals
    use = relay_use(relay, runtime.audit_path)
    assert intent.tx_hashes
    assert set(intent.tx_hashes) <= set(use.tx_hashes)
    assert use.public_sends == 0
    assert use.expired == 0
    for tx in intent.tx_hashes:
        assert cw3.eth.get_transaction_receipt(tx)["status"] == 1
        assert relay.find(tx)[0].state == "included"
    seen = kinds(runtime.audit_path)
    assert "broadcast" in seen
    # Its plan (approve, then swap) went as one bundle: both calls landed in one block.
    assert "broadcast.bundle-submitted" in seen
    assert relay.calls("eth_sendBundle")  # one bundle, offered for each block until it lands
    assert not relay.calls("eth_sendPrivateTransaction")
    if len(intent.tx_hashes) > 1:
        blocks = {cw3.eth.get_transaction_receipt(tx)["blockNumber"] for tx in intent.tx_hashes}
        assert len(blocks) == 1
