"""Risk limits, exits, alerts and automatic kills, each made to fire on a local chain.

The agent runs for real (anvil, the real Uniswap V2, fork simulation, a keystore signer);
other traders move the pool with real swaps. Every test has its own state dir.
"""

from __future__ import annotations

import json
import os
import urllib.request

import pytest
from eth_keys import keys

from defiagent.agent.demo_inbox import WebhookInbox
from defiagent.agent.devnet import UNIT, fund
from defiagent.devchain.deploy import swap_exact_in
from defiagent.errors import InfraError
from defiagent.signing.digest_signer import DigestSigner
from defiagent.strategy.intents import SwapExactIn

DUMPER = "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720"  # anvil's dev account 9


def buy(m, snapshot, amount=900 * UNIT, reason="test: buy DTKN"):
    return SwapExactIn(
        token_in=m.dusd,
        token_out=m.dtkn,
        amount_in=amount,
        min_amount_out=snapshot.quote_out([m.dusd, m.dtkn], amount) * 995 // 1000,
        reason=reason,
    )


class Buyer:
    """Buys DTKN with DUSD: `per_tick` intents on each of its first `ticks` ticks."""

    name = "buyer"

    def __init__(self, market, *, per_tick=1, ticks=1, amount=900 * UNIT):
        self.market, self.per_tick, self.left, self.amount = market, per_tick, ticks, amount
        self.asked = 0

    def describe(self) -> str:
        return "buyer (test)"

    def propose(self, snapshot, portfolio):
        self.asked += 1
        if self.left <= 0:
            return []
        self.left -= 1
        return [buy(self.market, snapshot, self.amount) for _ in range(self.per_tick)]


def dump_dtkn(cw3, market, amount):
    """Another trader sells DTKN into the pool: its price falls."""
    fund(cw3, market, DUMPER, eth=UNIT, dtkn=amount)
    swap_exact_in(cw3, market.dex, market.dtkn, market.dusd, amount, sender=DUMPER)


def audit(runtime, kind):
    lines = runtime.audit_path.read_text().splitlines()
    return [r["payload"] for r in map(json.loads, lines) if r["kind"] == kind]


def wide_prices(raw):
    """Prices may move a lot in these tests without the price check refusing them."""
    raw["market"]["max_deviation_bps"] = 9_000
    return raw


def test_stop_loss_exit_goes_through_the_guarded_path(start_agent, cw3, market):
    def configure(raw):
        raw = wide_prices(raw)
        raw["risk"]["stop_loss"] = {"stop_loss_pct": 10}
        raw["risk"]["loss_cooldown"] = {"max_consecutive_losses": 1, "cooldown_seconds": 600}
        raw["risk"]["max_daily_loss"] = {"max_loss_pct": 90}  # only the cooldown may pause
        raw["risk"]["max_drawdown"] = {"max_drawdown_pct": 90}
        return raw

    runtime = start_agent([Buyer(market, ticks=5)], configure=configure)
    first = runtime.agent.tick()
    assert [i.status for i in first.intents] == ["executed"], first.intents
    (position,) = runtime.agent.ledger.book.of("buyer")
    assert position.token == market.dtkn

    dump_dtkn(cw3, market, 600_000 * UNIT)  # about -40% for DTKN
    report = runtime.agent.tick()
    exits = [i for i in report.intents if i.why.startswith("stop-loss")]
    assert len(exits) == 1, report
    assert exits[0].status == "executed"
    assert runtime.agent.ledger.book.of("buyer") == []
    (closed,) = [t for t in audit(runtime, "trade") if t["exit_reason"] == "stop-loss"]
    assert closed["token_in"] == market.dtkn
    assert closed["realized_pnl"] < 0
    assert audit(runtime, "position-exit")[0]["rule"] == "stop-loss"
    assert "position-exit" in [a.kind for a in runtime.alerts.sent]
    assert runtime.metrics.value("defiagent_position_exits_total", reason="stop-loss") == 1
    # One losing close in a row is the configured limit: the strategy cools down.
    assert runtime.agent.tick().intents == []
    assert "losing trades in a row" in runtime.agent.paused["buyer"], runtime.agent.paused


def test_take_profit_exit(start_agent, cw3, market):
    def configure(raw):
        raw = wide_prices(raw)
        raw["risk"]["take_profit"] = {"take_profit_pct": 5}
        return raw

    runtime = start_agent([Buyer(market, amount=500 * UNIT)], configure=configure)
    first = runtime.agent.tick()
    assert first.intents[0].status == "executed", first.intents
    # Someone buys DTKN: its price rises.
    fund(cw3, market, DUMPER, eth=UNIT, dusd=200_000 * UNIT)
    swap_exact_in(cw3, market.dex, market.dusd, market.dtkn, 200_000 * UNIT, sender=DUMPER)
    report = runtime.agent.tick()
    (exit_,) = [i for i in report.intents if i.why.startswith("take-profit")]
    assert exit_.status == "executed", exit_
    assert exit_.status == "executed"
    (closed,) = [t for t in audit(runtime, "trade") if t["exit_reason"] == "take-profit"]
    assert closed["realized_pnl"] > 0


def test_trade_count_limit_pauses_the_strategy_with_an_alert(start_agent, market):
    def configure(raw):
        raw["risk"]["max_trades"] = {"max_trades": 2, "window_seconds": 3_600}
        return raw

    strategy = Buyer(market, per_tick=3, ticks=5, amount=100 * UNIT)
    runtime = start_agent([strategy], configure=configure)
    first = runtime.agent.tick()
    statuses = [i.status for i in first.intents]
    assert statuses == ["executed", "executed", "refused"]
    assert first.intents[2].first_rule == "max-trades"
    assert "2 trades" in first.intents[2].refusals[0].reason
    asked = strategy.asked
    second = runtime.agent.tick()
    assert second.intents == []  # paused: not even asked
    assert strategy.asked == asked
    (paused,) = audit(runtime, "strategy-paused")
    assert paused["rules"] == ["max-trades"]
    breaches = [a for a in runtime.alerts.sent if a.kind == "limit-breach"]
    assert any("paused by max-trades" in a.title for a in breaches)
    assert runtime.metrics.value("defiagent_strategy_paused", strategy="buyer") == 1
    risk = audit(runtime, "risk")[-1]
    assert {"rule": "max-trades", "used": 2.0, "limit": 2.0} in risk["limits"]


@pytest.mark.parametrize(
    ("section", "limit"),
    [("max_daily_loss", {"max_loss_pct": 3}), ("max_drawdown", {"max_drawdown_pct": 3})],
)
def test_a_measured_loss_trips_the_kill_switch(start_agent, cw3, market, section, limit):
    def configure(raw):
        raw = wide_prices(raw)
        raw["risk"]["max_daily_loss"] = {"max_loss_pct": 90}  # only `section` may fire
        raw["risk"]["max_drawdown"] = {"max_drawdown_pct": 90}
        raw["risk"][section] = limit
        return raw

    runtime = start_agent([Buyer(market, ticks=0)], configure=configure)
    assert runtime.agent.tick().skipped is None
    dump_dtkn(cw3, market, 300_000 * UNIT)  # the agent holds DTKN: its value falls
    runtime.agent.tick()
    status = runtime.kill_switch.status()
    rule = section.replace("_", "-")
    assert status.on
    assert status.changed_by == "auto-kill"
    assert status.reason.startswith(rule)
    assert audit(runtime, "auto-kill")[0]["trigger"] == rule
    assert audit(runtime, "strategy-paused")[0]["rules"] == [rule]
    assert runtime.agent.tick().skipped == "the kill switch is on"
    assert runtime.metrics.value("defiagent_kill_switch_on") == 1


@pytest.mark.parametrize(
    ("risk", "rule", "figure"),
    [
        # The agent already holds DTKN worth far more than 1,000 DUSD.
        ({"max_position": {"per_asset": {"DTKN": 1_000}}}, "max-position", "limit 1,000.00"),
        ({"max_position": {"max_value": 1_000}}, "max-position", "limit 1,000.00"),
        ({"strategy_capital": {"max_capital_pct": 0.5}}, "strategy-capital", "limit 0.5%"),
    ],
)
def test_position_and_capital_limits_refuse_a_buy(
    start_agent, cw3, market, signer, risk, rule, figure
):
    def configure(raw):
        for section, fields in risk.items():
            if "per_asset" in fields:
                fields = {"per_asset": {market.dtkn: fields["per_asset"]["DTKN"]}}
            raw["risk"][section] = fields
        return raw

    runtime = start_agent([Buyer(market)], configure=configure)
    before = cw3.eth.get_transaction_count(signer.address)
    (intent,) = runtime.agent.tick().intents
    assert intent.status == "refused"
    assert intent.first_rule == rule, intent.refusals
    assert figure in intent.refusals[0].reason
    assert cw3.eth.get_transaction_count(signer.address) == before


def test_gas_budget_pauses_after_it_is_spent(start_agent, market):
    def configure(raw):
        raw["risk"]["max_gas"] = {"max_eth": 0.0001}
        return raw

    strategy = Buyer(market, ticks=3, amount=100 * UNIT)
    runtime = start_agent([strategy], configure=configure)
    assert runtime.agent.tick().intents[0].status == "executed"  # nothing spent before it
    assert runtime.metrics.value("defiagent_gas_spent_wei_total") > 10**14
    assert runtime.agent.tick().intents == []
    (paused,) = audit(runtime, "strategy-paused")
    assert paused["rules"] == ["max-gas"]
    assert "budget 0.0001 ETH" in paused["reason"]


class UnreachableSigner:
    """The agent's address, but every signature request fails like a lost device/KMS."""

    backend = "unreachable"

    def __init__(self, real):
        self.address = real.address

    def sign_transaction(self, tx):
        raise InfraError("the signer does not answer (device unplugged)")


def test_consecutive_failures_trip_the_kill_switch(start_agent, market, signer):
    def configure(raw):
        raw["auto_kill"] = {"max_consecutive_failures": 2}
        return raw

    runtime = start_agent(
        [Buyer(market, per_tick=3, amount=100 * UNIT)],
        configure=configure,
        use_signer=UnreachableSigner(signer),
    )
    report = runtime.agent.tick()
    assert [i.status for i in report.intents][:2] == ["failed", "failed"], report.intents
    assert report.intents[2].status == "refused"  # the switch was tripped after two
    assert report.intents[2].first_rule == "kill-switch-off"
    status = runtime.kill_switch.status()
    assert status.on
    assert "2 transactions failed in a row" in status.reason
    kinds = [a["kind"] for a in audit(runtime, "alert")]  # throttled repeats included
    assert kinds.count("tx-failed") == 2
    assert "kill-switch" in kinds


class WrongKeySigner(DigestSigner):
    """Claims the agent's address but signs with another key (a swapped or hijacked device)."""

    backend = "wrong-key"

    def __init__(self, real):
        self._address = real.address
        self._key = keys.PrivateKey(os.urandom(32))

    @property
    def address(self) -> str:
        return self._address

    def _sign_digest(self, digest: bytes) -> tuple[int, int]:
        sig = self._key.sign_msg_hash(digest)
        return sig.r, sig.s


def test_a_signature_mismatch_alerts_and_trips_the_kill_switch(start_agent, cw3, market, signer):
    runtime = start_agent([Buyer(market)], use_signer=WrongKeySigner(signer))
    before = cw3.eth.get_transaction_count(signer.address)
    report = runtime.agent.tick()
    assert report.intents[0].status != "executed"
    assert report.intents[0].stage == "execution", report.intents
    assert cw3.eth.get_transaction_count(signer.address) == before
    (alert,) = [a for a in runtime.alerts.sent if a.kind == "signature-mismatch"]
    assert "does not recover" in alert.detail
    status = runtime.kill_switch.status()
    assert status.on
    assert "signature-mismatch" in status.reason


@pytest.fixture
def webhook():
    with WebhookInbox() as inbox:
        yield inbox


def test_metrics_endpoint_and_webhook_alert_on_a_refusal(start_agent, market, webhook, monkeypatch):
    monkeypatch.setenv("DEFIAGENT_ALERT_WEBHOOK_URL", webhook.url)
    from defiagent.chain.anvil import free_port

    port = free_port()

    def configure(raw):
        raw["metrics"] = {"port": port}
        raw["alerts"] = {"backoff_initial_seconds": 0.01}
        return raw

    class Thief:
        name = "thief"

        def describe(self):
            return "thief (test)"

        def propose(self, snapshot, portfolio):
            m = market
            return [
                SwapExactIn(
                    token_in=m.dusd,
                    token_out=m.dtkn,
                    amount_in=100 * UNIT,
                    min_amount_out=1,
                    recipient=DUMPER,  # someone else's address
                )
            ]

    runtime = start_agent([Thief()], configure=configure)
    report = runtime.agent.tick()
    assert report.intents[0].status == "refused"
    assert runtime.alerts.flush(5)
    texts = [r["text"] for r in webhook.received]
    assert any("recipient-is-self" in t for t in texts), texts
    posted = webhook.alerts()
    assert any(p["kind"] == "security-refusal" for p in posted)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        page = resp.read().decode()
    assert 'defiagent_refusals_total{rule="recipient-is-self"} 1.0' in page
    assert "defiagent_kill_switch_on 0.0" in page
    assert 'defiagent_alerts_total{delivered="yes",kind="security-refusal"}' in page


def test_leaving_the_mandate_alerts_and_can_trip_the_kill_switch(start_agent, market):
    def configure(raw):
        raw["strategy"] = {
            "name": "buyer",
            "path": "injected.py",
            "mandate": {"max_trade_value": 500},
        }
        raw["auto_kill"] = {"on_drift": True}
        return raw

    runtime = start_agent([Buyer(market, amount=900 * UNIT)], configure=configure)
    assert runtime.agent.tick().intents[0].status == "executed"
    assert not runtime.kill_switch.is_on()
    runtime.agent.tick()  # drift is judged once per tick, on the trades so far
    (finding,) = audit(runtime, "drift")
    assert finding["bound_name"] == "max_trade_value"
    assert finding["live"] > 500
    (alert,) = [a for a in runtime.alerts.sent if a.kind == "drift"]
    assert "500" in alert.detail
    status = runtime.kill_switch.status()
    assert status.on
    assert status.reason.startswith("drift:")


def test_a_stuck_transaction_alerts(start_agent, cw3, market):
    runtime = start_agent([Buyer(market, amount=100 * UNIT)], receipt_timeout_seconds=0.5)
    cw3.provider.make_request("evm_setAutomine", [False])
    try:
        report = runtime.agent.tick()
    finally:
        cw3.provider.make_request("evm_setAutomine", [True])
        cw3.provider.make_request("evm_mine", [])
    assert report.intents[0].status == "failed"
    (stuck,) = [a for a in runtime.alerts.sent if a.kind == "tx-stuck"]
    assert stuck.data["status"] == "pending"
    assert stuck.data["tx_hash"]


def test_a_kill_switch_turned_on_from_elsewhere_alerts(start_agent, market):
    runtime = start_agent([Buyer(market, ticks=0)])
    runtime.agent.tick()
    runtime.kill_switch.set(True, reason="operator: maintenance", changed_by="cli:ops")
    assert runtime.agent.tick().skipped == "the kill switch is on"
    (alert,) = [a for a in runtime.alerts.sent if a.kind == "kill-switch"]
    assert alert.title == "kill switch turned on"
    assert alert.detail == "operator: maintenance"
    assert alert.data["changed_by"] == "cli:ops"
