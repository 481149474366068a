"""The example strategy trades the way it says; the rogue one asks for every bad thing."""

from __future__ import annotations

import pytest

from defiagent.market.models import PoolState
from defiagent.strategy.builtin.mean_reversion import MeanReversion, MeanReversionParams
from defiagent.strategy.builtin.rogue import ATTACKS, MAX_UINT, RogueParams, RogueStrategy
from defiagent.strategy.intents import Approve, RawCall, SwapExactIn
from tests.guard import world as w
from tests.guard.world import DTKN, DUSD, E18, PAIR


def market_at(dtkn_price: float, *, checks_ok: bool = True):
    """The DUSD/DTKN pool with reserves set so 1 DTKN = dtkn_price DUSD."""
    base = w.market(checks_ok=checks_ok)
    pools = [
        PoolState(
            address=PAIR,
            token0=DUSD,
            token1=DTKN,
            reserve0=int(1_000_000 * dtkn_price) * E18,
            reserve1=1_000_000 * E18,
            total_supply=E18,
        ),
        base.pools[1],
    ]
    return base.model_copy(update={"pools": pools})


def strategy(**kw):
    params = {
        "base": DTKN,
        "quote": DUSD,
        "window": 3,
        "threshold_bps": 100,
        "trade_size_quote": 500 * E18,
        "slippage_bps": 50,
    } | kw
    return MeanReversion(MeanReversionParams(**params))


def feed(s, prices, **kw):
    out = []
    for price in prices:
        out = s.propose(market_at(price, **kw), w.portfolio())
    return out


def test_no_trade_without_history_or_signal():
    s = strategy()
    assert s.propose(market_at(0.5), w.portfolio()) == []
    assert feed(s, [0.5, 0.501]) == []


def test_sells_the_base_when_it_is_rich():
    (intent,) = feed(strategy(), [0.5, 0.5, 0.52])
    assert isinstance(intent, SwapExactIn)
    assert (intent.token_in, intent.token_out) == (DTKN, DUSD)
    market = market_at(0.52)
    quoted = market.quote_out([DTKN, DUSD], intent.amount_in)
    assert intent.min_amount_out == quoted * 9950 // 10_000
    assert intent.recipient is None
    assert "above its average" in intent.reason


def test_buys_the_base_when_it_is_cheap():
    (intent,) = feed(strategy(), [0.5, 0.5, 0.48])
    assert (intent.token_in, intent.token_out, intent.amount_in) == (DUSD, DTKN, 500 * E18)


def test_stays_idle_on_a_price_it_cannot_trust():
    assert feed(strategy(), [0.5, 0.5, 0.52], checks_ok=False) == []


def test_trade_is_capped_by_the_balance():
    s = strategy(trade_size_quote=10**9 * E18)
    (intent,) = feed(s, [0.5, 0.5, 0.48])
    assert intent.amount_in == w.portfolio().balance(DUSD)


def test_rogue_asks_for_every_attack():
    rogue = RogueStrategy(RogueParams(base=DTKN, quote=DUSD, flood=5))
    intents = rogue.propose(w.market(), w.portfolio())
    assert len(intents) == len(ATTACKS) - 1 + 5
    foreign = [i for i in intents if isinstance(i, SwapExactIn) and i.recipient]
    assert foreign[0].recipient == rogue.p.attacker
    assert any(isinstance(i, Approve) and i.amount == MAX_UINT for i in intents)
    assert any(isinstance(i, RawCall) for i in intents)
    assert sum(1 for i in intents if "flood" in i.reason) == 5


def test_rogue_acts_only_on_its_ticks():
    rogue = RogueStrategy(RogueParams(base=DTKN, quote=DUSD, on_ticks=[2]))
    assert rogue.propose(w.market(), w.portfolio()) == []
    assert rogue.propose(w.market(), w.portfolio())
    assert rogue.propose(w.market(), w.portfolio()) == []
    with pytest.raises(ValueError, match="unknown rogue attacks"):
        RogueStrategy(RogueParams(base=DTKN, quote=DUSD, attacks=["ddos"]))
