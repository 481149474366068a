"""The TWAP window starts from the chain's own history: a manipulation before the agent
started is seen, and the first tick already has a reference. Where the node serves no past
state, the agent's own observations are used, and each answer says which."""

from __future__ import annotations

import pytest

from defiagent.devchain.deploy import swap_exact_in
from defiagent.errors import InfraError
from defiagent.market.reader import ChainReader
from defiagent.protocols.uniswap_v2.twap import TwapReference
from tests.market.conftest import advance
from tests.market.test_sources import by_kind, observer


def test_the_first_snapshot_has_a_twap_from_the_chain(fresh, dex):
    advance(fresh, 300)  # five minutes of honest history before the agent starts
    check = observer(fresh, dex, [TwapReference(min_window_seconds=60)]).snapshot().price_checks[0]
    twap = by_kind(check, "twap")
    assert twap.answered, twap.reason
    assert twap.ok
    assert check.ok, check.reason
    assert "(chain history)" in twap.basis
    assert twap.price == pytest.approx(check.spot, rel=1e-6)


def test_a_manipulation_before_the_start_is_seen(fresh, dex):
    advance(fresh, 600)
    swap_exact_in(fresh, dex, dex.token_b, dex.token_a, 3 * 10**23)  # moves spot ~50%
    advance(fresh, 5)
    check = observer(fresh, dex, [TwapReference(min_window_seconds=60)]).snapshot().price_checks[0]
    twap = by_kind(check, "twap")
    assert twap.answered, twap.reason
    assert not check.ok
    assert twap.deviation_bps > 1_000
    assert "uniswap-v2-twap reference" in check.reason


def test_without_past_state_it_falls_back_to_its_own_observations(fresh, dex, monkeypatch):
    real_at = ChainReader.at

    def no_history(self, block):
        reader = real_at(self, block)

        def refuse(*args, **kwargs):
            raise InfraError("missing trie node (pruned)")

        reader._call = refuse
        return reader

    monkeypatch.setattr(ChainReader, "at", no_history)
    advance(fresh, 300)
    obs = observer(fresh, dex, [TwapReference(min_window_seconds=60)])
    first = by_kind(obs.snapshot().price_checks[0], "twap")
    assert not first.answered
    assert "serves no past state" in first.reason
    advance(fresh, 90)
    later = by_kind(obs.snapshot().price_checks[0], "twap")
    assert later.answered
    assert "the agent's own observations" in later.basis


def test_liquidity_added_late_starts_the_window_at_liquidity(fresh, dex):
    """Before a pair has reserves its accumulators do not move: a window reaching back
    before that would bias the average; the history search starts at liquidity."""
    advance(fresh, 3_000)
    ref = TwapReference(min_window_seconds=60, max_window_seconds=1_000_000)
    check = observer(fresh, dex, [ref]).snapshot().price_checks[0]
    twap = by_kind(check, "twap")
    assert twap.ok
    assert twap.price == pytest.approx(check.spot, rel=1e-6)
    block = int(twap.basis.split("block ")[1].split()[0])
    assert ChainReader(fresh, block).pool(dex.pair).reserve0 > 0
    try:  # one block earlier the pair had no liquidity (or did not exist yet)
        before = ChainReader(fresh, block - 1).pool(dex.pair).reserve0
    except InfraError:
        before = 0
    assert before == 0
