"""Market data from a real chain: reserves, the TWAP reference, the price sanity check."""

from __future__ import annotations

import pytest
from web3 import Web3

from defiagent.devchain import artifacts
from defiagent.devchain.deploy import contract, swap_exact_in
from defiagent.market.models import PriceQuote
from defiagent.market.observer import MarketObserver, numeraire_prices
from defiagent.market.reader import ChainReader
from defiagent.market.sanity import PriceSanityLimits, check_price
from defiagent.protocols.uniswap_v2.twap import TwapReference

A = "0x" + "11" * 20
B = "0x" + "22" * 20


def quote(price: float, at: int) -> PriceQuote:
    return PriceQuote(
        source="ref",
        base=Web3.to_checksum_address(A),
        quote=Web3.to_checksum_address(B),
        price=price,
        observed_at=at,
    )


def test_sanity_accepts_agreement_and_refuses_deviation_staleness_and_absence():
    limits = PriceSanityLimits(max_deviation_bps=300, max_reference_age_seconds=600)
    assert check_price(A, B, 1.01, quote(1.0, 1000), 1100, limits).ok
    deviated = check_price(A, B, 1.10, quote(1.0, 1000), 1100, limits)
    assert not deviated.ok
    assert "1000 bps" in deviated.reason
    stale = check_price(A, B, 1.0, quote(1.0, 0), 1100, limits)
    assert not stale.ok
    assert "old" in stale.reason
    assert not check_price(A, B, 1.0, None, 1100, limits).ok
    assert not check_price(A, B, None, quote(1.0, 1000), 1100, limits).ok


def _advance(w3: Web3, seconds: int) -> None:
    w3.provider.make_request("evm_increaseTime", [seconds])
    w3.provider.make_request("evm_mine", [])


def test_reader_twap_and_a_manipulated_spot(w3, uniswap):
    d = uniswap
    pair = contract(w3, artifacts.uniswap_v2_pair(), d.pair)
    pool = ChainReader(w3).pool(d.pair)
    r0, r1, _ = pair.functions.getReserves().call()
    assert (pool.reserve0, pool.reserve1) == (r0, r1)
    assert {pool.token0, pool.token1} == {d.token_a, d.token_b}
    assert pool.total_supply > 0

    observer = MarketObserver(
        w3,
        pools=[d.pair],
        tokens=[d.token_a, d.token_b],
        references=[TwapReference(min_window_seconds=30)],
        limits=PriceSanityLimits(max_deviation_bps=300),
        numeraire=d.token_a,
    )
    first = observer.snapshot()
    assert not first.price_checks[0].ok  # one observation: no reference yet (fail closed)
    _advance(w3, 60)
    calm = observer.snapshot()
    check = calm.price_checks[0]
    assert check.ok, check.reason
    assert check.deviation_bps == pytest.approx(0, abs=1)
    prices = numeraire_prices(calm)
    assert prices[d.token_b] * 10**18 == pytest.approx(0.5, rel=1e-6)

    # Someone dumps 10% of the pool in one block: spot moves, the TWAP does not.
    swap_exact_in(w3, d, d.token_b, d.token_a, 2 * 10**23)
    moved = observer.snapshot()
    assert not moved.price_checks[0].ok
    assert "deviates" in moved.price_checks[0].reason
    assert numeraire_prices(moved) == {d.token_a: 1e-18}  # no sane route: no price

    portfolio = observer.portfolio(d.deployer, spenders=[d.router])
    assert portfolio.balance(d.token_a) > 0
    assert f"{d.token_a}:{d.router}" in portfolio.allowances


@pytest.mark.slow
def test_chainlink_reference_agreement_deviation_and_staleness(w3, uniswap):
    from pathlib import Path

    from defiagent.devchain.artifacts import compile_contract
    from defiagent.devchain.deploy import deploy
    from defiagent.market.references import ChainlinkReference

    d = uniswap
    artifact = compile_contract(
        Path(__file__).parent / "sol" / "TestPriceFeed.sol", "TestPriceFeed"
    )
    feed = deploy(w3, artifact, 8, sender=d.deployer)
    observer = MarketObserver(
        w3,
        pools=[d.pair],
        tokens=[d.token_a, d.token_b],
        references=[ChainlinkReference({(d.token_b, d.token_a): feed.address})],  # DTKN in DUSD
        limits=PriceSanityLimits(max_deviation_bps=300, max_reference_age_seconds=600),
    )

    def set_feed(price: float, age: int = 0) -> None:
        now = w3.eth.get_block("latest")["timestamp"]
        tx = feed.functions.set(int(price * 10**8), now - age).transact({"from": d.deployer})
        w3.eth.wait_for_transaction_receipt(tx)

    set_feed(0.5)
    check = observer.snapshot().price_checks[0]
    assert check.ok, check.reason
    set_feed(0.6)
    assert "deviates" in observer.snapshot().price_checks[0].reason
    set_feed(0.5, age=3600)
    assert "old" in observer.snapshot().price_checks[0].reason


def test_twap_after_a_gap_uses_the_newest_window_that_fits():
    """A gap longer than max_window (a restart, a quiet chain) must not leave the TWAP
    without a quote until the old point ages out: a newer point that fits is used."""
    from defiagent.market.models import PoolState, TokenInfo
    from defiagent.market.references import Q112

    a, b = Web3.to_checksum_address(A), Web3.to_checksum_address(B)
    pool = PoolState(
        address=Web3.to_checksum_address("0x" + "33" * 20),
        token0=a,
        token1=b,
        reserve0=10**18,
        reserve1=2 * 10**18,
        block_timestamp_last=0,
    )
    ta, tb = (
        TokenInfo(address=a, symbol="A", decimals=18),
        TokenInfo(address=b, symbol="B", decimals=18),
    )
    twap = TwapReference(min_window_seconds=60, max_window_seconds=3_600)

    def cumulative(t):  # price 2 B per A since time 0, as the pair would accumulate it
        return 2 * Q112 * t, Q112 * t // 2

    for t in (1_000, 6_000, 6_100):  # a 5,000 s gap, then 100 s of observations
        twap.record(pool.model_copy(update={"block_timestamp_last": t}), *cumulative(t), t)
    got = twap.quote(ta, tb, pool, 6_100)
    assert got is not None
    assert got.price == pytest.approx(2.0)
