"""The HTTP price API source against a real local server: good, lying, stale, slow, garbage
and oversized answers; the API key only from the environment, never logged; and an HTTP
price never enough on its own, even when it agrees with spot."""

from __future__ import annotations

import logging
import time

import pytest
from web3 import Web3

from defiagent.errors import ConfigError
from defiagent.market.http_price import HttpPriceConfig, HttpPricePair, HttpPriceReference
from defiagent.market.models import PoolState, TokenInfo
from defiagent.market.sanity import PriceSanityLimits, check_sources
from defiagent.protocols.uniswap_v2.twap import TwapReference
from tests.market.conftest import advance
from tests.market.test_sources import by_kind, observer

A = Web3.to_checksum_address("0x" + "11" * 20)
B = Web3.to_checksum_address("0x" + "22" * 20)
TA = TokenInfo(address=A, symbol="DTKN", decimals=18)
TB = TokenInfo(address=B, symbol="DUSD", decimals=18)
POOL = PoolState(address=A, token0=A, token1=B, reserve0=2 * 10**24, reserve1=10**24)
LIMITS = PriceSanityLimits(max_deviation_bps=300, max_reference_age_seconds=600, min_sources=2)


def source(api, path="/p/{base_symbol}-{quote_symbol}", *, base=A, quote=B, **cfg):
    pair = HttpPricePair(
        base=base,
        quote=quote,
        url=api.url + path,
        price_path="data.price",
        timestamp_path="data.ts",
    )
    timeouts = {"connect_timeout_seconds": 1.0, "read_timeout_seconds": 0.3}
    return HttpPriceReference(HttpPriceConfig(pairs=[pair], **(timeouts | cfg)))


def answer(price, ts=None):
    return {"data": {"price": price, "ts": int(time.time()) if ts is None else ts}}


def test_a_good_answer_is_read(price_api):
    price_api.answer("/p/DTKN-DUSD", answer("0.5"))
    got = source(price_api).read(TA, TB, POOL, 0)
    assert got.answered
    assert got.ok
    assert got.price == 0.5
    assert got.age_seconds <= 2
    assert not got.onchain
    # A pair configured the other way round is priced as 1 / price (symbols follow the pair).
    price_api.answer("/p/DUSD-DTKN", answer("0.5"))
    inv = source(price_api, base=B, quote=A).read(TA, TB, POOL, 0)
    assert inv.price == pytest.approx(2.0)


def test_iso_and_millisecond_timestamps(price_api):
    price_api.answer("/iso", {"data": {"price": 0.5, "ts": "2020-01-01T00:00:00Z"}})
    iso = source(price_api, "/iso").read(TA, TB, POOL, 0)
    assert iso.observed_at == 1577836800
    price_api.answer("/ms", answer(0.5, int(time.time() * 1000)))
    ms = source(price_api, "/ms")
    ms.config = ms.config.model_copy(
        update={"pairs": [ms.config.pairs[0].model_copy(update={"timestamp_unit": "ms"})]}
    )
    assert ms.read(TA, TB, POOL, 0).age_seconds <= 2


@pytest.mark.parametrize(
    ("payload", "status", "delay", "why"),
    [
        (b"<html>not json</html>", 200, 0, "the body is not JSON"),
        (b'{"data": {"price": 0.5', 200, 0, "the body is not JSON"),
        (answer(0), 200, 0, "the price 0 is not positive"),
        (answer(-1.5), 200, 0, "the price -1.5 is not positive"),
        (answer("abc"), 200, 0, "is not a number"),
        (answer(True), 200, 0, "the price is not a number"),
        ({"data": {"ts": 1}}, 200, 0, "no 'data.price' in the answer"),
        ({"data": {"price": 0.5}}, 200, 0, "no 'data.ts' in the answer"),
        (answer(0.5), 500, 0, "HTTP status 500"),
        (answer(0.5), 302, 0, "HTTP status 302"),  # redirects are not followed
        (answer(0.5), 200, 1.0, "no answer within 1.0s connect / 0.3s read"),
        ({"data": {"price": 0.5, "ts": 1, "pad": "x" * 70_000}}, 200, 0, "exceeds 65536 bytes"),
    ],
)
def test_a_bad_answer_is_no_quote(price_api, payload, status, delay, why):
    price_api.answer("/bad", payload, status=status, delay=delay)
    started = time.monotonic()
    got = source(price_api, "/bad").read(TA, TB, POOL, 0)
    assert time.monotonic() - started < 0.9  # the slow answer is abandoned at the timeout
    assert not got.answered
    assert got.price is None
    assert why in got.reason


def test_a_trickling_answer_is_cut_at_the_total_budget(price_api):
    price_api.answer("/trickle", answer(0.5))
    price_api.trickle["/trickle"] = 0.1  # each byte within the read timeout, the whole not
    started = time.monotonic()
    got = source(price_api, "/trickle").read(TA, TB, POOL, 0)
    assert time.monotonic() - started < 2.0
    assert not got.answered
    assert "the answer took longer than 1.3s" in got.reason


def test_a_stall_in_the_middle_of_the_body_is_a_timeout(price_api):
    price_api.answer("/stall", answer(0.5))
    price_api.trickle["/stall"] = 0.6  # beyond the 0.3 s read timeout, after the headers
    got = source(price_api, "/stall").read(TA, TB, POOL, 0)
    assert not got.answered
    assert "no answer within 1.0s connect / 0.3s read" in got.reason


def test_an_unreachable_api_is_no_quote():
    class Dead:
        url = "http://127.0.0.1:9"

    got = source(Dead).read(TA, TB, POOL, 0)
    assert not got.answered
    assert "the request failed" in got.reason


def test_a_stale_answer_refuses(price_api):
    price_api.answer("/stale", answer(0.5, int(time.time()) - 3_600))
    got = source(price_api, "/stale").read(TA, TB, POOL, 0)
    assert got.answered
    assert got.age_seconds >= 3_600
    twap = by_twap(0.5)
    check = check_sources(A, B, 0.5, [twap, got], LIMITS)
    assert not check.ok  # the TWAP agrees; the stale answer still refuses
    assert "http:127.0.0.1 reference is 36" in check.reason
    assert "(limit 600s)" in check.reason


def test_a_future_timestamp_refuses(price_api):
    price_api.answer("/future", answer(0.5, int(time.time()) + 600))
    got = source(price_api, "/future").read(TA, TB, POOL, 0)
    check = check_sources(A, B, 0.5, [by_twap(0.5), got], LIMITS)
    assert not check.ok
    assert "in the future of this host's clock" in check.reason


def test_a_lying_answer_refuses(price_api):
    price_api.answer("/lie", answer(0.6))
    got = source(price_api, "/lie").read(TA, TB, POOL, 0)
    check = check_sources(A, B, 0.5, [by_twap(0.5), got], LIMITS)
    assert not check.ok
    assert "spot 0.5 deviates 1667 bps from the http:127.0.0.1 reference 0.6" in check.reason
    assert "(limit 300 bps; age 0s, limit 600s)" in check.reason or "age 1s" in check.reason


def by_twap(price):
    from defiagent.market.models import SourceCheck

    return SourceCheck(
        source="uniswap-v2-twap",
        kind="twap",
        onchain=True,
        answered=True,
        price=price,
        observed_at=0,
        age_seconds=0,
        ok=True,
    )


def test_the_api_key_comes_from_the_environment_and_is_never_logged(price_api, monkeypatch, caplog):
    secret = "s3cr3t-key-value"
    monkeypatch.setenv("TEST_PRICE_API_KEY", secret)
    price_api.answer("/keyed", b"garbage")
    src = source(price_api, "/keyed", api_key_env="TEST_PRICE_API_KEY", api_key_header="X-Key")
    with caplog.at_level(logging.DEBUG):
        got = src.read(TA, TB, POOL, 0)
    assert price_api.requests[-1]["X-Key"] == secret
    assert not got.answered
    assert secret not in caplog.text
    assert secret not in got.model_dump_json()
    monkeypatch.delenv("TEST_PRICE_API_KEY")
    assert "TEST_PRICE_API_KEY is not set" in src.read(TA, TB, POOL, 0).reason


def test_urls_must_be_https_and_carry_no_key():
    base = {"base": A, "quote": B, "price_path": "p", "timestamp_path": "t"}
    with pytest.raises(ValueError, match="https"):
        HttpPricePair(url="http://prices.example/p", **base)
    with pytest.raises(ValueError, match="API key"):
        HttpPricePair(url="https://prices.example/p?apikey=abc", **base)
    assert HttpPricePair(url="https://prices.example/{base_symbol}", **base)


def test_an_http_price_alone_is_never_enough(fresh, dex, price_api):
    """On the chain: the API agrees with the pool, spot + HTTP is two sources, still refused."""
    price_api.answer("/onchain", answer(0.5))
    http = source(price_api, "/onchain", base=dex.token_b, quote=dex.token_a)
    check = observer(fresh, dex, [http]).snapshot().price_checks[0]
    assert by_kind(check, "http").ok
    assert check.agreeing_sources == 2
    assert not check.ok
    assert "no on-chain reference (twap or chainlink) agrees" in check.reason
    assert "http:127.0.0.1 price 2 vs spot 2: deviation 0 bps" in check.reason or (
        "http:127.0.0.1 price 0.5 vs spot 0.5" in check.reason
    )


def test_http_as_a_third_source(fresh, dex, price_api):
    price_api.answer("/third", answer(0.5))
    http = source(price_api, "/third", base=dex.token_b, quote=dex.token_a)
    obs = observer(fresh, dex, [TwapReference(min_window_seconds=30), http], min_sources=3)
    obs.snapshot()
    advance(fresh, 60)
    assert obs.snapshot().price_checks[0].ok
    # The API goes silent (slow beyond the timeout): too few sources, fail closed.
    price_api.answer("/third", answer(0.5), delay=1.0)
    check = obs.snapshot().price_checks[0]
    assert not check.ok
    assert "only 2 of the required 3 sources" in check.reason
    assert "no answer within" in check.reason
    # It lies: refused even though spot and the TWAP agree.
    price_api.answer("/third", answer(0.7))
    check = obs.snapshot().price_checks[0]
    assert not check.ok
    assert "deviates" in check.reason
    assert "http:127.0.0.1" in check.reason


def test_config_refuses_http_alone_and_unreachable_min_sources():
    from defiagent.config import MarketConfig

    pair = {"base": A, "quote": B, "url": "https://p.example/x", "price_path": "p"}
    pair["timestamp_path"] = "t"
    with pytest.raises(ValueError, match="never trusted alone"):
        MarketConfig(references=["http"], http={"pairs": [pair]})
    with pytest.raises(ValueError, match="can never reach it"):
        MarketConfig(references=["twap"], min_sources=3)
    with pytest.raises(ValueError, match="chainlink_feeds is empty"):
        MarketConfig(references=["twap", "chainlink"])
    with pytest.raises(ValueError, match=r"http\.pairs is empty"):
        MarketConfig(references=["twap", "http"])
    with pytest.raises(ValueError, match="greater than or equal to 2"):
        MarketConfig(min_sources=1)
    cfg = MarketConfig(references=["twap", "http"], min_sources=3, http={"pairs": [pair]})
    assert cfg.references == ["twap", "http"]
    assert ConfigError  # the agent reports these as one sentence naming the field
