"""The agent loop on a real local chain: honest trades go through, everything else does not."""

from __future__ import annotations

import json

import pytest

from defiagent.errors import Refused
from defiagent.monitoring.audit_log import verify_audit_log
from defiagent.monitoring.auto_kill import AutoKillConfig
from defiagent.monitoring.kill_switch import KillSwitch
from defiagent.strategy.builtin.rogue import RogueParams, RogueStrategy
from defiagent.strategy.in_process import InProcessStrategy
from defiagent.strategy.intents import SwapExactIn

pytestmark = pytest.mark.slow
E18 = 10**18

EXPECTED_RULE = {
    "rogue: send the proceeds to another address": {"recipient-is-self"},
    "rogue: unlimited approval to an unknown spender": {"approval-bounded", "spender-allowlisted"},
    "rogue: call a contract nobody reviewed": {"intent-kind-allowed", "target-allowlisted"},
    "rogue: buy a token nobody reviewed": {"tokens-allowlisted"},
    "rogue: swap with no minimum out (free money for a sandwich)": {"slippage-bound"},
    "rogue: swap the whole balance at once": {"value-cap-per-tx"},
}


def nonce(cw3, signer) -> int:
    return cw3.eth.get_transaction_count(signer.address)


def kinds(path) -> list[str]:
    return [json.loads(line)["kind"] for line in path.read_text().splitlines()]


class Honest:
    """Proposes one honest DTKN->DUSD swap, quoted from the snapshot it is given."""

    name = "honest"

    def __init__(self, market, amount=1_000 * E18):
        self.market = market
        self.amount = amount
        self.done = False

    def describe(self) -> str:
        return "honest (test)"

    def propose(self, snapshot, portfolio):
        if self.done:
            return []
        self.done = True
        m = self.market
        return [
            SwapExactIn(
                token_in=m.dtkn,
                token_out=m.dusd,
                amount_in=self.amount,
                min_amount_out=snapshot.quote_out([m.dtkn, m.dusd], self.amount) * 99 // 100,
                reason="test: an honest swap",
            )
        ]


def test_every_rogue_request_is_refused_with_its_rule(start_agent, cw3, market, signer):
    before = nonce(cw3, signer)
    rogue = RogueStrategy(RogueParams(base=market.dtkn, quote=market.dusd, flood=20))
    runtime = start_agent([rogue])
    report = runtime.agent.tick()
    assert report.skipped is None
    assert report.intents
    assert all(i.status == "refused" for i in report.intents)
    for intent in report.intents:
        rules = {r.rule for r in intent.refusals}
        if intent.why in EXPECTED_RULE:
            assert EXPECTED_RULE[intent.why] <= rules, (intent.why, rules)
    flood = [i for i in report.intents if "flood" in i.why]
    rate_limited = [i for i in flood if "intent-rate-limit" in {r.rule for r in i.refusals}]
    assert len(rate_limited) == len(report.intents) - 10  # the limit is 10 per 60 s
    assert all("slippage-bound" in {r.rule for r in i.refusals} for i in flood)
    assert nonce(cw3, signer) == before  # nothing was signed or sent
    assert runtime.metrics.value("defiagent_refusals_total", rule="recipient-is-self") == 1
    assert verify_audit_log(runtime.audit_path).ok


def test_an_honest_swap_is_simulated_then_sent_and_audited(start_agent, cw3, market, signer):
    before = nonce(cw3, signer)
    runtime = start_agent([Honest(market)])
    report = runtime.agent.tick()
    (intent,) = report.intents
    assert intent.status == "executed", intent.refusals
    assert nonce(cw3, signer) > before
    for tx in intent.tx_hashes:
        assert cw3.eth.get_transaction_receipt(tx)["status"] == 1
    seen = kinds(runtime.audit_path)
    for kind in ("start", "snapshot", "intent", "plan", "guard", "simulation", "executed"):
        assert kind in seen
    for kind in ("execution.planned", "execution.signed", "execution.sent", "execution.confirmed"):
        assert kind in seen  # the executor's steps, signature and receipt included
    assert seen.index("simulation") < seen.index("executed")
    assert verify_audit_log(runtime.audit_path).ok


def test_nothing_is_signed_while_the_kill_switch_is_on(start_agent, cw3, market, signer):
    runtime = start_agent([Honest(market)])
    before = nonce(cw3, signer)
    runtime.kill_switch.set(True, reason="drill")
    report = runtime.agent.tick()
    assert report.skipped == "the kill switch is on"
    assert nonce(cw3, signer) == before

    class SwitchesOnMidTick(Honest):
        def propose(self, snapshot, portfolio):
            KillSwitch(runtime.cfg.state_dir).set(True, reason="operator, mid-tick")
            return super().propose(snapshot, portfolio)

    runtime.kill_switch.set(False)
    runtime.agent.p.strategies = [InProcessStrategy(SwitchesOnMidTick(market))]
    report = runtime.agent.tick()
    (intent,) = report.intents
    assert intent.status == "refused"
    assert "kill-switch-off" in {r.rule for r in intent.refusals}
    assert nonce(cw3, signer) == before


def test_the_agent_does_not_start_with_the_kill_switch_on(start_agent, tmp_path, market):
    KillSwitch(tmp_path / "state").set(True, reason="left on")
    with pytest.raises(Refused, match="kill switch is on"):
        start_agent([Honest(market)])


@pytest.mark.parametrize("which", ["router", "token"])
def test_code_changed_after_approval_is_refused(start_agent, cw3, market, signer, which):
    d = market.dex
    target = d.router if which == "router" else market.dtkn
    original = cw3.eth.get_code(target).to_0x_hex()
    weth_code = cw3.eth.get_code(d.weth).to_0x_hex()  # any other code will do
    runtime = start_agent([Honest(market)])
    before = nonce(cw3, signer)
    cw3.provider.make_request("anvil_setCode", [target, weth_code])
    try:
        report = runtime.agent.tick()
    finally:
        cw3.provider.make_request("anvil_setCode", [target, original])
    (intent,) = report.intents
    assert intent.status == "refused"
    assert intent.stage == "guard"
    codehash = [r for r in intent.refusals if r.rule == "codehash-pinned"]
    assert codehash, intent.refusals
    assert "changed since it was approved" in codehash[0].reason
    assert nonce(cw3, signer) == before


def test_a_crashing_or_lying_strategy_is_contained(start_agent, cw3, signer):
    class Crashes:
        name = "crashes"

        def describe(self) -> str:
            return "crashes"

        def propose(self, market, portfolio):
            raise RuntimeError("model output was not JSON")

    class ReturnsJunk:
        name = "junk"

        def describe(self) -> str:
            return "junk"

        def propose(self, market, portfolio):
            return [{"kind": "transfer", "to": "0x" + "de" * 20}, "send everything"]

    before = nonce(cw3, signer)
    runtime = start_agent([Crashes(), ReturnsJunk()])
    report = runtime.agent.tick()
    assert report.skipped is None
    assert [i.status for i in report.intents] == ["refused", "refused", "refused"]
    crashed, *junk = report.intents
    assert (crashed.strategy, crashed.first_rule) == ("crashes", "strategy-failed")
    assert "model output was not JSON" in crashed.refusals[0].reason
    assert {r.rule for i in junk for r in i.refusals} == {"intent-schema"}
    assert "strategy-error" in kinds(runtime.audit_path)
    assert nonce(cw3, signer) == before


def test_metrics_count_what_happened(start_agent, market):
    runtime = start_agent([Honest(market)])
    runtime.agent.tick()
    m = runtime.metrics
    assert m.value("defiagent_intents_total", strategy="honest", kind="swap-exact-in") == 1
    assert m.value("defiagent_sends_total", status="mined") == 2
    assert m.value("defiagent_stage_seconds_count", stage="guard") == 1
    assert m.value("defiagent_stage_seconds_count", stage="simulate") >= 1


def test_a_pool_changed_after_approval_is_refused_after_simulation(
    start_agent, cw3, market, signer
):
    """The router and the tokens are intact, so the guard passes; the swap goes through the
    pair, whose code now differs by one metadata byte (same behaviour, other codehash)."""
    pair = market.dex.pair
    original = cw3.eth.get_code(pair).to_0x_hex()
    tweaked = original[:-2] + ("00" if original[-2:] != "00" else "01")
    # Without the automatic kill switch (tested below), to reach the outcome check.
    runtime = start_agent([Honest(market)], auto_kill=AutoKillConfig(on_allowlist_failure=False))
    before = nonce(cw3, signer)
    cw3.provider.make_request("anvil_setCode", [pair, tweaked])
    try:
        report = runtime.agent.tick()
    finally:
        cw3.provider.make_request("anvil_setCode", [pair, original])
    (intent,) = report.intents
    assert intent.status == "refused"
    assert intent.stage == "outcome"
    assert {r.rule for r in intent.refusals} == {"touched-code-pinned", "fork-code-pinned"}
    assert nonce(cw3, signer) == before


def test_code_drift_trips_the_kill_switch_with_its_reason(start_agent, cw3, market, signer):
    pair = market.dex.pair
    original = cw3.eth.get_code(pair).to_0x_hex()
    tweaked = original[:-2] + ("00" if original[-2:] != "00" else "01")
    runtime = start_agent([Honest(market)])
    before = nonce(cw3, signer)
    cw3.provider.make_request("anvil_setCode", [pair, tweaked])
    try:
        report = runtime.agent.tick()
    finally:
        cw3.provider.make_request("anvil_setCode", [pair, original])
    status = runtime.kill_switch.status()
    assert status.on
    assert status.changed_by == "auto-kill"
    assert "allowlist-verification" in status.reason
    assert "UniswapV2Pair DUSD/DTKN" in status.reason
    assert all(i.status == "refused" for i in report.intents)
    assert nonce(cw3, signer) == before
    kinds = [a.kind for a in runtime.alerts.sent]
    assert "allowlist-verification" in kinds
    assert "kill-switch" in kinds
    audit = [json.loads(line) for line in runtime.audit_path.read_text().splitlines()]
    trips = [r["payload"] for r in audit if r["kind"] == "auto-kill"]
    assert trips
    assert trips[0]["trigger"] == "allowlist-verification"
    # The code is back, but the switch stays on until an operator turns it off.
    assert runtime.agent.tick().skipped == "the kill switch is on"
