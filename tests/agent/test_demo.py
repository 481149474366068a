"""`defiagent demo`, end to end: honest trades sent, every rogue request refused, log intact."""

from __future__ import annotations

import json

import pytest

from defiagent.cli.app import main

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("vetting")]


def test_demo_json(capsys):
    assert main(["demo", "--ticks", "3", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    summary = doc["summary"]
    assert summary["ticks"] == 3
    assert summary["rogue_requests"] > 10
    assert summary["rogue_executed"] == 0
    assert summary["executed"] >= 1
    assert doc["audit"]["ok"]
    assert len(doc["allowlist"]) == 7
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


def test_demo_human_output(capsys):
    assert main(["demo", "--ticks", "2"]) == 0
    out = capsys.readouterr().out
    assert "recipient-is-self" in out
    assert "audit log:" in out
    assert "intact" in out
