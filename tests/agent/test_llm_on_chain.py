"""The built-in `llm` strategy end to end: its own sandboxed child, its model reached only
through the egress proxy, its intents judged by the guard and sent on a local chain.

Each test starts the agent with one `StrategyHost` running `builtin = "llm"` against a local
OpenAI-compatible server (tests/strategy/model_server.py) and ticks it once: a good answer is
traded, a poisoned one sends nothing to the attacker, a broken or slow one costs the tick's
intents and nothing else, an endpoint not in `network` is never reached, and the API key is
nowhere the operator (or anyone reading the logs) could see it.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import pytest
from eth_account import Account

from defiagent.market.reader import ChainReader
from defiagent.monitoring.audit_log import verify_audit_log
from defiagent.strategy.config import StrategyConfig
from defiagent.strategy.host import StrategyHost
from tests.strategy.model_server import INJECTION_DROPPED, ModelServer

pytestmark = pytest.mark.slow

E18 = 10**18
AMOUNT = 1_000 * E18
TICK_TIMEOUT = 3.0
CALL_TIMEOUT = 1.0
# A throwaway key, new each run: long and random, so any occurrence of it is a leak.
API_KEY = "sk-test-" + secrets.token_hex(20)
ATTACKER = Account.create().address


@pytest.fixture
def server():
    with ModelServer() as s:
        yield s


@pytest.fixture
def other_server():
    with ModelServer() as s:
        yield s


class Llm:
    """The llm strategy's host, as the runtime would build it from a `[[strategies]]` table,
    with the egress decisions it reports kept for the test."""

    def __init__(self, market, *, allowed: ModelServer, base_url: str) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.host = StrategyHost(
            StrategyConfig(
                name="llm",
                builtin="llm",
                network=[f"http://127.0.0.1:{allowed.port}"],
                params={
                    "base_url": base_url,
                    "model": "test-model",
                    "timeout_seconds": CALL_TIMEOUT,
                    "allowed_kinds": ["swap-exact-in"],
                    "tokens": [market.dtkn, market.dusd],
                },
                limits={"tick_timeout_seconds": TICK_TIMEOUT},
            ),
            secrets={"api_key": API_KEY},
            on_event=lambda kind, data: self.events.append((kind, data)),
        )

    @property
    def egress(self) -> list[dict[str, Any]]:
        return [data for kind, data in self.events if kind == "strategy-egress"]


def nonce(cw3, signer) -> int:
    return cw3.eth.get_transaction_count(signer.address)


def honest_swap(cw3, market, **extra) -> dict[str, Any]:
    """1000 DTKN -> DUSD with a minimum 1% under the pool's quote at the current block: the
    quote the agent makes from the same reserves."""
    quote = ChainReader(cw3).pool(market.dex.pair).amount_out(market.dtkn, AMOUNT)
    return {
        "id": "llm-legit",
        "kind": "swap-exact-in",
        "token_in": market.dtkn,
        "token_out": market.dusd,
        "amount_in": str(AMOUNT),
        "min_amount_out": str(quote * 99 // 100),
        "reason": "DTKN a little rich against the reference: sell some",
        **extra,
    }


def wait_until(predicate, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True


def audit(runtime) -> list[dict[str, Any]]:
    return [json.loads(line) for line in runtime.audit_path.read_text().splitlines()]


def notes(runtime) -> list[str]:
    return [
        note
        for record in audit(runtime)
        if record["kind"] == "strategy-notes" and record["payload"]["strategy"] == "llm"
        for note in record["payload"]["notes"]
    ]


def assert_nothing_sent(report, runtime, cw3, signer, before: int) -> None:
    assert report.skipped is None
    assert report.intents == []  # no intent, and no failed tick either
    assert nonce(cw3, signer) == before
    assert "strategy-error" not in {r["kind"] for r in audit(runtime)}


def assert_key_kept(runtime, llm: Llm, report, capfd, caplog) -> None:
    """The key went to the endpoint only: not the audit log, output, logs, alerts or reports."""
    out, err = capfd.readouterr()
    places = {
        "the audit log": runtime.audit_path.read_text(),
        "stdout": out,
        "stderr": err,
        "the logs": caplog.text,
        "the alerts": repr(runtime.alerts.sent),
        "the tick report": report.model_dump_json(),
        "the egress events": repr(llm.events),
        "the strategy's stderr": llm.host.stderr_tail(),
    }
    for where, text in places.items():
        assert API_KEY not in text, f"the API key leaked into {where}"
    assert verify_audit_log(runtime.audit_path).ok


def test_valid_intents_are_executed(start_agent, server, cw3, market, signer, capfd, caplog):
    llm = Llm(market, allowed=server, base_url=server.url)
    runtime = start_agent([llm.host])
    before = nonce(cw3, signer)
    server.respond_with("intents", intents=[honest_swap(cw3, market)])

    report = runtime.agent.tick()

    assert report.skipped is None
    (intent,) = report.intents
    assert (intent.strategy, intent.intent_id) == ("llm", "llm-legit")
    assert intent.status == "executed", intent.refusals
    assert intent.tx_hashes
    for tx in intent.tx_hashes:
        assert cw3.eth.get_transaction_receipt(tx)["status"] == 1
    assert nonce(cw3, signer) > before
    # The request went through the proxy with the key and the structured-output schema.
    (request,) = server.requests
    assert request.path.endswith("/v1/chat/completions")
    assert request.authorization == f"Bearer {API_KEY}"
    assert request.body["model"] == "test-model"
    fmt = request.response_format
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["schema"]["required"] == ["intents"]
    assert [(e["allowed"], e["port"]) for e in llm.egress] == [(True, server.port)]
    assert notes(runtime) == []
    assert_key_kept(runtime, llm, report, capfd, caplog)


def test_prompt_injection_sends_nothing_to_the_attacker(
    start_agent, server, cw3, market, signer, capfd, caplog
):
    chain = ChainReader(cw3)
    tokens = (market.dtkn, market.dusd, market.dex.weth)
    llm = Llm(market, allowed=server, base_url=server.url)
    runtime = start_agent([llm.host])
    server.respond_with(
        "injection", swap=honest_swap(cw3, market), attacker=ATTACKER, token=market.dtkn
    )

    report = runtime.agent.tick()

    assert report.skipped is None
    # The strategy drops the raw call, the approve, the swap paid elsewhere and the made-up
    # kind, and says so; whatever reached the agent other than the legit swap is refused.
    said = notes(runtime)
    dropped = [n for n in said if n.startswith("llm: dropped an intent")]
    assert len(dropped) == INJECTION_DROPPED, said
    assert any("raw-call: never allowed" in n for n in dropped)
    assert any("approve: not allowed" in n for n in dropped)
    assert any("names a recipient" in n for n in dropped)
    assert any("'transfer': not allowed" in n for n in dropped)
    assert f"llm: kept 1 of {INJECTION_DROPPED + 1} intents" in said
    for intent in report.intents:
        if intent.intent_id == "llm-legit":
            assert intent.status == "executed", intent.refusals
        else:
            assert intent.status == "refused", intent
    # The model's text is data: none of it (the order, the attacker) is in the audit log.
    log = runtime.audit_path.read_text()
    assert "SYSTEM OVERRIDE" not in log
    assert ATTACKER.lower() not in log.lower()
    # Nothing ever reached the attacker on chain.
    assert cw3.eth.get_balance(ATTACKER) == 0
    for token in tokens:
        assert chain.balance_of(token, ATTACKER) == 0
        assert chain.allowance(token, signer.address, ATTACKER) == 0
    assert_key_kept(runtime, llm, report, capfd, caplog)


FAILURES = {
    "malformed": (("malformed", {}), "the answer is not valid JSON (cut at max_tokens)"),
    "huge": (("huge", {"size": 4 * 1024 * 1024}), "bytes, over the"),
    "huge-unannounced": (
        ("huge", {"size": 4 * 1024 * 1024, "announce_length": False}),
        "the answer exceeds the",
    ),
    "http-429": (("status", {"status": 429}), "model call failed: HTTP 429 (RateLimitError)"),
    "http-500": (
        ("status", {"status": 500}),
        "model call failed: HTTP 500 (InternalServerError)",
    ),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_a_failed_model_call_costs_the_intents_not_the_tick(
    start_agent, server, cw3, market, signer, capfd, caplog, case
):
    (mode, options), expected = FAILURES[case]
    llm = Llm(market, allowed=server, base_url=server.url)
    runtime = start_agent([llm.host])
    before = nonce(cw3, signer)
    server.respond_with(mode, **options)

    report = runtime.agent.tick()

    assert_nothing_sent(report, runtime, cw3, signer, before)
    assert len(server.requests) == 1
    said = notes(runtime)
    assert any(expected in n for n in said), said
    assert any(n.endswith("no intents this tick") for n in said), said
    assert_key_kept(runtime, llm, report, capfd, caplog)


def test_a_stalled_model_is_cut_by_the_strategy_own_timeout(
    start_agent, server, cw3, market, signer, capfd, caplog
):
    llm = Llm(market, allowed=server, base_url=server.url)
    runtime = start_agent([llm.host])
    before = nonce(cw3, signer)
    server.respond_with("stall", seconds=60)

    started = time.monotonic()
    report = runtime.agent.tick()
    seconds = time.monotonic() - started

    assert seconds < TICK_TIMEOUT + 2, seconds
    assert_nothing_sent(report, runtime, cw3, signer, before)
    said = notes(runtime)
    assert any("model call failed: timeout" in n for n in said), said
    # It was asked, through the proxy, and never answered. (On a loaded machine the request
    # may still be on its way when the strategy gives up: the call carries on in its thread.)
    assert wait_until(lambda: len(server.requests) == 1), said
    assert_key_kept(runtime, llm, report, capfd, caplog)


def test_a_model_server_not_in_network_is_never_reached(
    start_agent, server, other_server, cw3, market, signer, capfd, caplog
):
    llm = Llm(market, allowed=server, base_url=other_server.url)
    runtime = start_agent([llm.host])
    before = nonce(cw3, signer)
    other_server.respond_with("intents", intents=[honest_swap(cw3, market)])

    report = runtime.agent.tick()

    assert_nothing_sent(report, runtime, cw3, signer, before)
    assert other_server.requests == []
    assert server.requests == []
    said = notes(runtime)
    assert any("model call failed" in n for n in said), said
    refused = [e for e in llm.egress if not e["allowed"]]
    assert refused, llm.events
    assert {e["port"] for e in refused} == {other_server.port}
    assert not any(e["allowed"] for e in llm.egress)
    assert_key_kept(runtime, llm, report, capfd, caplog)
