"""Strict calldata decoding, and the rule registry that `rules list` and the config read."""

from __future__ import annotations

import pytest

from defiagent.cli.app import main
from defiagent.errors import ConfigError
from defiagent.guard.calldata import CalldataError, decode_call, encode_call, parse_signature
from defiagent.guard.guard import Guard
from defiagent.guard.registry import ALL_RULES, build_rules, parse_sections

SWAP = (
    "swapExactTokensForTokens(uint256 amountIn,uint256 amountOutMin,address[] path,"
    "address to,uint256 deadline)"
)
A, B = "0x" + "11" * 20, "0x" + "22" * 20


def test_signature_parsing_and_selector():
    fn = parse_signature(SWAP)
    assert fn.names == ("amountIn", "amountOutMin", "path", "to", "deadline")
    assert fn.selector == "0x38ed1739"
    assert parse_signature("approve(address guy, uint wad)").canonical == "approve(address,uint256)"
    tup = parse_signature("f((address a,uint256 b)[] xs, bytes data)")
    assert tup.types == ("(address,uint256)[]", "bytes")


def test_decode_roundtrip_and_strictness():
    data = encode_call(SWAP, [5, 4, [A, B], A, 9])
    call = decode_call(SWAP, data)
    assert call.args["path"] == (
        "0x1111111111111111111111111111111111111111",
        "0x2222222222222222222222222222222222222222",
    )
    with pytest.raises(CalldataError, match="canonical"):
        decode_call(SWAP, data + "00" * 32)
    with pytest.raises(CalldataError, match="does not call"):
        decode_call("approve(address spender,uint256 amount)", data)
    with pytest.raises(CalldataError):
        decode_call(SWAP, data[:50])
    dirty = "0x095ea7b3" + "ff" * 12 + A[2:] + "00" * 31 + "01"  # dirty address padding
    with pytest.raises(CalldataError):
        decode_call("approve(address spender,uint256 amount)", dirty)


def test_every_rule_has_metadata():
    ids = [r.id for r in ALL_RULES]
    assert len(ids) == len(set(ids))
    for rule in ALL_RULES:
        meta = rule.metadata()
        assert meta["id"]
        assert meta["title"]
        assert meta["description"]
        assert meta["threat"]
        assert meta["group"] in ("guard", "risk")
        assert meta["severity"] in ("critical", "high", "medium", "low")


def test_rules_explain_themselves_with_their_config():
    guard, risk = parse_sections({}, {"max_daily_loss": {"max_loss_pct": 2, "window_hours": 24}})
    lines = Guard(build_rules(guard, risk)).explain()
    assert "MaxDailyLoss: pause all trading after 2% loss in 24h" in lines
    assert any(line.startswith("IntentRateLimit: at most 10 intents") for line in lines)


def test_a_risk_rule_can_be_disabled_but_a_guard_rule_cannot():
    guard, risk = parse_sections({}, {"max_drawdown": {"enabled": False}})
    ids = {r.id for r in build_rules(guard, risk)}
    assert "max-drawdown" not in ids
    assert "recipient-is-self" in ids
    with pytest.raises(ConfigError, match="rate_limit"):
        parse_sections({"rate_limit": {"enabled": False}}, {})


def test_bad_rule_config_names_the_field():
    with pytest.raises(ConfigError, match=r"per_tx_value_cap\.max_value"):
        parse_sections({"per_tx_value_cap": {"max_value": -1}}, {})
    with pytest.raises(ConfigError, match="no_such_rule"):
        parse_sections({"no_such_rule": {}}, {})


def test_rules_list_cli(capsys):
    assert main(["rules", "list", "--json"]) == 0
    import json

    doc = json.loads(capsys.readouterr().out)
    ids = {r["id"] for r in doc["rules"]}
    assert {"recipient-is-self", "codehash-pinned", "max-daily-loss"} <= ids
    assert any(r["group"] == "outcome" for r in doc["rules"])  # outcome checks too
    assert main(["rules", "list"]) == 0
    assert "codehash-pinned" in capsys.readouterr().out
