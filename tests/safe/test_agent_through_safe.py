"""The agent trading from the Safe: approve and swap go out as one MultiSendCallOnly
transaction through the guard, checked on the Safe's balances; the rogue's requests are
refused off chain before anything is signed; a Safe out of sync refuses the start."""

from __future__ import annotations

import pytest

from defiagent.agent.devnet import UNIT, fund
from defiagent.errors import Refused
from defiagent.monitoring.audit_log import verify_audit_log
from defiagent.safe.config import SafeConfig
from defiagent.strategy.builtin.rogue import RogueParams, RogueStrategy
from defiagent.strategy.intents import SwapExactIn
from tests.agent.test_agent_on_chain import EXPECTED_RULE

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("safe-agent")]


class Honest:
    """One honest DTKN->DUSD swap, 0.5% under the snapshot's quote: inside the 1% slippage
    bound with room, so the rule's rounding at the limit never decides it."""

    name = "honest"

    def __init__(self, market, amount=1_000 * UNIT):
        self.market, self.amount, self.done = market, amount, False

    def describe(self) -> str:
        return "honest (test)"

    def propose(self, snapshot, portfolio):
        if self.done:
            return []
        self.done = True
        m = self.market
        quote = snapshot.quote_out([m.dtkn, m.dusd], self.amount)
        return [
            SwapExactIn(
                token_in=m.dtkn,
                token_out=m.dusd,
                amount_in=self.amount,
                min_amount_out=quote * 995 // 1000,
                reason="test: an honest swap from the Safe",
            )
        ]


def _balance(cw3, token, who):
    data = "0x70a08231" + who[2:].lower().rjust(64, "0")
    return int.from_bytes(cw3.eth.call({"to": token, "data": data}), "big")


@pytest.fixture
def safe_cfg(deployment):
    return SafeConfig(
        address=deployment.safe, guard=deployment.guard, multi_send=deployment.infra.multi_send
    )


def test_a_safe_trade_is_one_transaction_from_the_safe(
    start_agent, cw3, market, signer, deployment, safe_allowlist, safe_cfg
):
    fund(cw3, market, deployment.safe, eth=0, dtkn=5_000 * UNIT)
    safe = deployment.safe
    key_before = (
        _balance(cw3, market.dtkn, signer.address),
        _balance(cw3, market.dusd, signer.address),
    )
    dtkn, dusd = _balance(cw3, market.dtkn, safe), _balance(cw3, market.dusd, safe)
    nonce = cw3.eth.get_transaction_count(signer.address)
    runtime = start_agent([Honest(market)], safe=safe_cfg, allowlist_override=safe_allowlist)
    report = runtime.agent.tick()
    (intent,) = report.intents
    assert intent.status == "executed", intent.refusals
    assert len(intent.tx_hashes) == 1  # approve and swap in one MultiSend
    receipt = cw3.eth.get_transaction_receipt(intent.tx_hashes[0])
    assert receipt["status"] == 1
    assert receipt["to"] == deployment.guard
    assert cw3.eth.get_transaction_count(signer.address) == nonce + 1
    assert _balance(cw3, market.dtkn, safe) == dtkn - 1_000 * UNIT
    assert _balance(cw3, market.dusd, safe) > dusd
    # The key's own tokens did not move: it only paid gas.
    assert (
        _balance(cw3, market.dtkn, signer.address),
        _balance(cw3, market.dusd, signer.address),
    ) == key_before
    assert verify_audit_log(runtime.audit_path).ok


def test_the_rogue_is_refused_off_chain_from_the_safe_too(
    start_agent, cw3, market, signer, deployment, safe_allowlist, safe_cfg
):
    fund(cw3, market, deployment.safe, eth=0, dtkn=5_000 * UNIT)
    nonce = cw3.eth.get_transaction_count(signer.address)
    rogue = RogueStrategy(RogueParams(base=market.dtkn, quote=market.dusd, flood=0))
    runtime = start_agent([rogue], safe=safe_cfg, allowlist_override=safe_allowlist)
    report = runtime.agent.tick()
    assert report.intents
    assert all(i.status == "refused" for i in report.intents)
    for intent in report.intents:
        if intent.why in EXPECTED_RULE:
            assert EXPECTED_RULE[intent.why] <= {r.rule for r in intent.refusals}, intent.why
    assert cw3.eth.get_transaction_count(signer.address) == nonce


def test_the_agent_refuses_to_start_on_a_safe_out_of_sync(
    start_agent, market, deployment, safe_allowlist, safe_cfg
):
    entries = dict(safe_allowlist.entries)
    entries[market.dtkn] = entries[market.dtkn].model_copy(update={"revoked": True})
    changed = safe_allowlist.model_copy(update={"entries": entries})
    with pytest.raises(Refused, match=r"not ready for the agent.*sync-guard"):
        start_agent([], safe=safe_cfg, allowlist_override=changed)


def test_a_call_the_onchain_guard_refuses_is_refused_at_simulation_with_its_reason(
    start_agent, cw3, market, signer, deployment, safe_allowlist, safe_cfg, owners, tmp_path
):
    """The owners tighten the guard while the agent runs (DTKN revoked on chain only): the
    agent's next DTKN sale reverts in the guard on the fork, so it is refused, in words,
    and nothing is signed."""
    from defiagent.safe import sync
    from defiagent.safe.runtime import wanted_config

    fund(cw3, market, deployment.safe, eth=0, dtkn=5_000 * UNIT)
    runtime = start_agent([Honest(market)], safe=safe_cfg, allowlist_override=safe_allowlist)
    entries = dict(safe_allowlist.entries)
    entries[market.dtkn] = entries[market.dtkn].model_copy(update={"revoked": True})
    stricter = wanted_config(
        safe_allowlist.model_copy(update={"entries": entries}), safe_cfg.multi_send
    )
    path = tmp_path / "sync.json"
    sync.propose(cw3, deployment.ref, stricter, path)
    for owner in owners:
        sync.approve(cw3, deployment.ref, path, owner, stricter)
    sync.execute(cw3, deployment.ref, path, signer, stricter)
    nonce = cw3.eth.get_transaction_count(signer.address)
    (intent,) = runtime.agent.tick().intents
    assert intent.status == "refused"
    reasons = " ".join(r.reason for r in intent.refusals)
    assert "the guard refused" in reasons
    assert "DTKN" in reasons or market.dtkn in reasons
    assert cw3.eth.get_transaction_count(signer.address) == nonce
