"""[market] references/min_sources: parsed, refused with a sentence naming the field, built."""

from __future__ import annotations

import pytest

from defiagent.agent.runtime import build_references
from defiagent.config import parse_config
from defiagent.errors import ConfigError
from defiagent.market.http_price import HttpPriceReference
from defiagent.market.references import ChainlinkReference
from defiagent.protocols.uniswap_v2.twap import TwapReference

A = "0x" + "11" * 20
B = "0x" + "22" * 20
F = "0x" + "33" * 20
PAIR = {
    "base": A,
    "quote": B,
    "url": "https://p.example/x",
    "price_path": "p",
    "timestamp_path": "t",
}


def config(**market):
    return parse_config(
        {
            "rpc_url": "http://127.0.0.1:8545",
            "chain_id": 31337,
            "protocols": {"router": A, "weth": B},
            "market": market,
            "signer": {"backend": "keystore", "path": "k.json", "password_env": "X"},
        }
    )


def test_defaults_are_spot_and_the_twap():
    cfg = config()
    assert cfg.market.references == ["twap"]
    assert cfg.market.min_sources == 2
    [twap] = build_references(cfg)
    assert isinstance(twap, TwapReference)


def test_every_source_is_built_with_its_limits():
    cfg = config(
        references=["twap", "chainlink", "http"],
        min_sources=4,
        max_reference_age_seconds=900,
        chainlink_feeds=[
            {"base": A, "quote": B, "address": F, "min_answer": 1, "max_answer": 10},
            {"base": B, "quote": A, "address": F, "max_age_seconds": 3600},
        ],
        http={
            "pairs": [
                {
                    "base": A,
                    "quote": B,
                    "url": "https://prices.example/{base_symbol}",
                    "price_path": "price",
                    "timestamp_path": "ts",
                }
            ],
            "api_key_env": "PRICE_KEY",
        },
    )
    twap, link, http = build_references(cfg)
    assert isinstance(twap, TwapReference)
    assert twap.max_age == 900
    assert isinstance(link, ChainlinkReference)
    assert [s.max_age_seconds for s in link.specs] == [900, 3600]
    assert (link.specs[0].min_answer, link.specs[0].max_answer) == (1, 10)
    assert isinstance(http, HttpPriceReference)
    assert http.max_age == 900
    assert "PRICE_KEY" in str(cfg.redacted())  # the variable's name, never a key


@pytest.mark.parametrize(
    ("market", "message"),
    [
        ({"reference": "twap"}, "market.reference"),  # the old single field is gone
        ({"references": ["http"], "http": {"pairs": [PAIR]}}, "never trusted alone"),
        ({"references": ["twap", "http"]}, "http.pairs is empty"),
        ({"references": ["twap"], "min_sources": 3}, "can never reach it"),
        ({"min_sources": 1}, "market.min_sources"),
        ({"references": ["twap", "twap"]}, "lists a source twice"),
        ({"references": ["twap", "chainlink"]}, "chainlink_feeds is empty"),
        ({"references": ["twap", "pyth"]}, "market.references"),
        (
            {
                "chainlink_feeds": [
                    {"base": A, "quote": B, "address": F, "min_answer": 5, "max_answer": 5}
                ]
            },
            "min_answer must be below max_answer",
        ),
    ],
)
def test_bad_market_config_is_one_sentence_naming_the_field(market, message):
    with pytest.raises(ConfigError, match=message) as exc:
        config(**market)
    assert str(exc.value).startswith("config field ")
