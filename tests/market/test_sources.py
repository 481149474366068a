"""Several price sources against the pool's spot, on a real chain with the real Uniswap V2:
a pool manipulated within one block, stale, lying and carried-over oracle rounds, every
Chainlink round check, and too few sources, each refused with the figures in the reason."""

from __future__ import annotations

import re

import pytest

from defiagent.devchain.deploy import swap_exact_in
from defiagent.market.chainlink import FeedSpec
from defiagent.market.observer import MarketObserver
from defiagent.market.references import ChainlinkReference
from defiagent.market.sanity import PriceSanityLimits
from defiagent.protocols.uniswap_v2.twap import TwapReference
from tests.market.conftest import advance, block_time


def observer(w3, dex, sources, *, min_sources=2, max_deviation_bps=300, max_age=600):
    return MarketObserver(
        w3,
        pools=[dex.pair],
        tokens=[dex.token_a, dex.token_b],
        references=sources,
        limits=PriceSanityLimits(
            max_deviation_bps=max_deviation_bps,
            max_reference_age_seconds=max_age,
            min_sources=min_sources,
        ),
        numeraire=dex.token_a,
    )


def chainlink(dex, feed, **limits) -> ChainlinkReference:
    # The feed answers DTKN in DUSD (0.5), whatever the pool's token order.
    spec = FeedSpec(base=dex.token_b, quote=dex.token_a, address=feed.address, **limits)
    return ChainlinkReference([spec])


def by_kind(check, kind):
    return next(s for s in check.sources if s.kind == kind)


def test_twap_and_oracle_agree_with_an_honest_pool(fresh, dex, make_feed):
    feed = make_feed()
    feed.set(0.5)
    obs = observer(fresh, dex, [TwapReference(min_window_seconds=30), chainlink(dex, feed)])
    obs.snapshot()
    advance(fresh, 60)
    check = obs.snapshot().price_checks[0]
    assert check.ok, check.reason
    assert check.agreeing_sources == 3
    assert [s.ok for s in check.sources] == [True, True]
    assert check.deviation_bps == pytest.approx(0, abs=1)


def test_pool_manipulated_within_one_block_is_refused_with_figures(fresh, dex, make_feed):
    feed = make_feed()
    feed.set(0.5)
    obs = observer(fresh, dex, [TwapReference(min_window_seconds=30), chainlink(dex, feed)])
    obs.snapshot()
    advance(fresh, 60)
    assert obs.snapshot().price_checks[0].ok

    # A large swap mined right before the agent reads: spot moves in that block.
    swap = swap_exact_in(fresh, dex, dex.token_b, dex.token_a, 2 * 10**23)
    snap = obs.snapshot()
    assert snap.block_number == fresh.eth.get_transaction_receipt(swap.tx_hash)["blockNumber"]
    check = snap.price_checks[0]
    assert not check.ok
    twap, oracle = by_kind(check, "twap"), by_kind(check, "chainlink")
    # The TWAP does not see the manipulation in its own block, and the oracle agrees with it.
    assert twap.price == pytest.approx(oracle.price, rel=1e-4)
    assert not twap.ok
    assert not oracle.ok
    assert twap.deviation_bps > 1_500
    assert oracle.deviation_bps > 1_500
    # The figures: source, its price, spot, deviation and its limit, age and its limit.
    assert f"spot {check.spot:.6g} deviates {twap.deviation_bps:.0f} bps" in check.reason
    assert f"uniswap-v2-twap reference {twap.price:.6g} (limit 300 bps; age 0s" in check.reason
    assert f"deviates {oracle.deviation_bps:.0f} bps from the chainlink" in check.reason
    assert "limit 600s" in check.reason
    # The references' own answers stay in the snapshot, for the strategy and the audit log.
    assert {q.source.split()[0] for q in snap.references} == {"uniswap-v2-twap", "chainlink"}


def test_a_stale_oracle_refuses_even_when_the_twap_agrees(fresh, dex, make_feed):
    feed = make_feed()
    obs = observer(fresh, dex, [TwapReference(min_window_seconds=30), chainlink(dex, feed)])
    obs.snapshot()
    advance(fresh, 60)
    feed.set(0.5, age=3_600)
    check = obs.snapshot().price_checks[0]
    assert not check.ok
    assert by_kind(check, "twap").ok
    assert re.search(r"chainlink 0x\w+: round 1 is 360\ds old \(limit 600s\)", check.reason)
    assert check.reference_age_seconds >= 3_600


def test_a_lying_oracle_is_not_outvoted(fresh, dex, make_feed):
    feed = make_feed()
    obs = observer(fresh, dex, [TwapReference(min_window_seconds=30), chainlink(dex, feed)])
    obs.snapshot()
    advance(fresh, 60)
    feed.set(0.6)  # 20% above the pool, which is honest
    check = obs.snapshot().price_checks[0]
    assert not check.ok
    assert by_kind(check, "twap").ok  # spot and TWAP agree: two sources, still refused
    oracle = by_kind(check, "chainlink")
    assert oracle.deviation_bps > 1_500
    assert oracle.deviation_bps == pytest.approx(
        abs(check.spot - oracle.price) / oracle.price * 10_000
    )
    assert f"deviates {oracle.deviation_bps:.0f} bps from the chainlink" in check.reason
    assert "(limit 300 bps" in check.reason


def test_answered_in_round_behind_round_id_is_stale(fresh, dex, make_feed):
    feed = make_feed()
    obs = observer(fresh, dex, [TwapReference(min_window_seconds=30), chainlink(dex, feed)])
    obs.snapshot()
    advance(fresh, 60)
    feed.set(0.5, round_id=5, answered_in_round=4)
    check = obs.snapshot().price_checks[0]
    assert not check.ok
    assert "answeredInRound 4 < roundId 5" in check.reason
    assert "deviation 0 bps" in check.reason  # the price itself looks fine: still refused


@pytest.mark.parametrize(
    ("setup", "limits", "expected"),
    [
        ({"price": 0, "raw_answer": 0}, {}, "answer 0 of round 1 is not positive"),
        ({"price": 0, "raw_answer": -5}, {}, "answer -5 of round 1 is not positive"),
        ({"price": 0.5, "updated_at": 0}, {}, "has updatedAt 0"),
        ({"price": 0.5, "age": -900}, {}, "in the future of block time"),
        ({"price": 0.5, "age": 120}, {"max_age_seconds": 60}, "old (limit 60s)"),
        ({"price": 0.5}, {"min_answer": 0.5}, "at or below the circuit-breaker bound"),
        ({"price": 0.5}, {"max_answer": 0.5}, "at or above the circuit-breaker bound"),
    ],
)
def test_every_chainlink_round_check_fires(fresh, dex, make_feed, setup, limits, expected):
    feed = make_feed()
    setup = dict(setup)
    feed.set(setup.pop("price"), **setup)
    obs = observer(fresh, dex, [chainlink(dex, feed, **limits)])
    check = obs.snapshot().price_checks[0]
    assert not check.ok
    assert expected in check.reason
    assert check.sources[0].answered
    assert not check.sources[0].ok


def test_within_the_circuit_breaker_bounds_and_max_age_is_ok(fresh, dex, make_feed):
    feed = make_feed()
    feed.set(0.5, age=50)
    obs = observer(
        fresh, dex, [chainlink(dex, feed, max_age_seconds=60, min_answer=0.1, max_answer=5)]
    )
    check = obs.snapshot().price_checks[0]
    assert check.ok, check.reason
    assert check.sources[0].age_seconds >= 50
    assert check.sources[0].max_age_seconds == 60


def test_only_spot_is_not_enough(fresh, dex, make_feed):
    alone = observer(fresh, dex, []).snapshot().price_checks[0]
    assert not alone.ok
    assert "only 1 of the required 2 sources" in alone.reason

    # A TWAP with no window yet: no answer, so again only spot.
    first = observer(fresh, dex, [TwapReference(min_window_seconds=30)]).snapshot()
    assert not first.price_checks[0].ok
    assert "no reference price is available yet" in first.price_checks[0].reason
    assert "no TWAP window yet" in first.price_checks[0].reason


def test_min_sources_not_met_when_a_reference_is_silent(fresh, dex, make_feed):
    feed = make_feed()
    feed.set(0.5)
    other = FeedSpec(base=dex.token_a, quote=dex.weth, address=feed.address)  # not this pool
    obs = observer(
        fresh,
        dex,
        [TwapReference(min_window_seconds=30), ChainlinkReference([other])],
        min_sources=3,
    )
    obs.snapshot()
    advance(fresh, 60)
    check = obs.snapshot().price_checks[0]
    assert not check.ok
    assert "only 2 of the required 3 sources" in check.reason
    assert "chainlink: not configured for" in check.reason

    # With the feed for this pool, three sources agree.
    obs3 = observer(
        fresh, dex, [TwapReference(min_window_seconds=30), chainlink(dex, feed)], min_sources=3
    )
    obs3.snapshot()
    advance(fresh, 60)
    feed.set(0.5)
    assert obs3.snapshot().price_checks[0].ok


def test_a_reverting_feed_gives_no_answer_and_fails_closed(fresh, dex):
    not_a_feed = FeedSpec(base=dex.token_b, quote=dex.token_a, address=dex.factory)
    check = observer(fresh, dex, [ChainlinkReference([not_a_feed])]).snapshot().price_checks[0]
    assert not check.ok
    assert not check.sources[0].answered
    assert "the feed could not be read" in check.reason


def test_block_time_helper_moves(fresh):
    before = block_time(fresh)
    advance(fresh, 5)
    assert block_time(fresh) >= before + 5
