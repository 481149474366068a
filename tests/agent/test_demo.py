"""`defiagent demo`, end to end: honest trades sent, every rogue request refused, log intact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from defiagent.cli.app import main

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("vetting")]


def test_demo_json(capsys):
    assert main(["demo", "--ticks", "6", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    summary = doc["summary"]
    assert summary["ticks"] == 6
    assert summary["rogue_requests"] > 10
    assert summary["rogue_executed"] == 0
    assert summary["executed"] >= 1
    assert doc["audit"]["ok"]
    # Every contract deployed (V2, V3 and its pools, WETH, tokens, the vault) was reviewed
    # into the allowlist; V3 on its bytecode, as npm ships no sources for it.
    assert doc["left_out"] == {}
    assert set(doc["allowlist"]) == set(doc["contracts"].values())
    names = set(doc["allowlist"].values())
    assert {"SwapRouter", "QuoterV2", "UniswapV3Factory", "UniswapV2Router02"} <= names
    assert any(n.startswith("UniswapV3Pool") for n in names)
    executed = [i for t in doc["ticks"] for i in t["intents"] if i["status"] == "executed"]
    by_strategy = {i["strategy"] for i in executed}
    # It trades on a V2 pair, on a V3 pool and into the ERC-4626 vault...
    assert {"mean-reversion", "mean-reversion-v3", "treasury"} <= by_strategy
    assert any(i["kind"] == "vault-deposit" for i in executed)
    # ...and every transaction went to the private relay, none to the public mempool.
    relay = doc["relay"]
    assert relay["public_sends"] == summary["public_sends"] == 0
    sent = [h for i in executed for h in i["tx_hashes"]]
    assert set(relay["tx_hashes"]) == set(sent)
    assert relay["included"] == len(sent) == summary["private_transactions"]
    assert relay["expired"] == 0
    # A plan of two calls (approve, then the swap or deposit) went as one bundle.
    assert relay["bundles"] == sum(1 for i in executed if len(i["tx_hashes"]) == 2)
    rules = {
        r["rule"]
        for t in doc["ticks"]
        for i in t["intents"]
        if i["strategy"] == "rogue"
        for r in i["refusals"]
    }
    assert {
        "recipient-is-self",
        "approval-bounded",
        "spender-allowlisted",
        "target-allowlisted",
        "tokens-allowlisted",
        "slippage-bound",
        "value-cap-per-tx",
        "intent-rate-limit",
    } <= rules
    for tick in doc["ticks"]:
        for intent in tick["intents"]:
            if intent["status"] == "executed":
                assert intent["tx_hashes"]
    # Both strategies ran in sandboxes under their signed pins; every escape the rogue tried
    # (files, RPC, kill switch, signals, memory, endless loop, garbage) was blocked...
    assert set(doc["pins"]) == {"mean-reversion", "mean-reversion-v3", "treasury", "rogue"}
    escapes = {e["attempt"]: e for e in doc["escapes"]}
    assert len(escapes) == 7
    for attempt, e in escapes.items():
        assert e["attempted"], (attempt, e)
        assert e["blocked"], (attempt, e)
    assert summary["escapes_blocked"] == summary["escapes_tried"] == 7
    # ...while the honest strategy kept trading after them.
    honest_after = [
        i
        for t in doc["ticks"]
        if t["tick"] >= 4
        for i in t["intents"]
        if i["strategy"] == "mean-reversion" and i["status"] == "executed"
    ]
    assert honest_after
    # The demo's own noise traders never push it into a pause (price sanity, valuation).
    assert all(t["paused"] == {} for t in doc["ticks"]), [t["paused"] for t in doc["ticks"]]
    # The rogue strategy's refusals reached the local webhook as security alerts...
    kinds = {a["kind"] for a in doc["alerts"]}
    assert "security-refusal" in kinds
    assert all(a["agent"] == doc["agent"] for a in doc["alerts"])
    # ...and the live /metrics endpoint counted the same refusals.
    assert doc["metrics_url"].startswith("http://127.0.0.1:")
    refusals = [m for m in doc["metrics"] if m.startswith("defiagent_refusals_total")]
    assert any('rule="recipient-is-self"' in m for m in refusals)
    assert "defiagent_kill_switch_on 0.0" in doc["metrics"]

    # The behaviour report reads the demo's real audit log back.
    capsys.readouterr()
    html = Path(doc["workdir"]) / "report.html"
    assert main(["report", "--audit-log", doc["audit_log"], "--html", str(html), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)["report"]
    # Every executed intent moved assets (swaps and the vault's deposits and withdraws)...
    assert len(report["trades"]) == len(executed)
    # ...and each trade names the pinned code that made it.
    honest = {doc["pins"][n] for n in ("mean-reversion", "mean-reversion-v3", "treasury")}
    assert {row["trade"]["pin"] for row in report["trades"]} == honest
    assert report["refusals_by_rule"]["recipient-is-self"] >= 1
    assert len(report["value_series"]) >= 3  # one risk record per tick
    assert "<svg" in html.read_text()


def test_demo_human_output(capsys):
    assert main(["demo", "--ticks", "2"]) == 0
    out = capsys.readouterr().out
    assert "recipient-is-self" in out
    assert "audit log:" in out
    assert "alerts received by the local webhook" in out
    assert "security-refusal" in out
    assert "/metrics" in out
    assert "intact" in out
    assert "sent to the public mempool: 0" in out
