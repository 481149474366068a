"""History must not slow the agent: the ledger's reads are indexed, and count what a scan counts.

The indexes answer the same questions as a scan of every trade (`now - at < window`), for
any order of arrival (a clock that steps back) and any query; and the agent's per-intent
path never iterates the trade list, so its cost does not grow with the history.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from defiagent.agent.risk_desk import RiskDesk, StrategyRisk
from defiagent.agent.state import SpendLedger
from defiagent.guard.guard import Guard
from defiagent.guard.registry import build_exit_rules, build_rules
from defiagent.monitoring.events import TradeEvent
from defiagent.risk.positions import PositionBook
from defiagent.risk.trades import TimeIndex, TradeLedger, moved_assets
from defiagent.strategy.intents import SwapExactIn
from tests.guard import world as w
from tests.guard.world import DTKN, DUSD, E18, NOW

times = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False) | st.sampled_from(
    [0.0, 0.1, 0.2, 0.30000000000000004, 1e-300, 3600.0]
)


def trade(at, *, strategy="s", buy=True, out=100, gas=7, moved=True) -> TradeEvent:
    return TradeEvent(
        at=at,
        strategy=strategy,
        intent_id=f"i{at}",
        kind="swap-exact-in",
        token_in=DUSD if buy else DTKN,
        token_out=DTKN if buy else DUSD,
        amount_in=(100 if buy else 200) if moved else 0,
        amount_out=(200 if buy else out) if moved else 0,
        value_in=100.0,
        value_out=100.0 if buy else float(out),
        gas_cost_wei=gas,
    )


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(times, st.integers(0, 10**20)), max_size=40),
    st.lists(st.tuples(times, st.floats(min_value=0, max_value=1e7, allow_nan=False)), max_size=8),
)
def test_time_index_counts_exactly_what_a_scan_counts(points, queries):
    index = TimeIndex()
    for at, weight in points:  # arbitrary order: the clock may step back
        index.add(at, weight)
    for now, seconds in queries:
        inside = [(a, wt) for a, wt in points if now - a < seconds]
        assert index.window(now, seconds) == (len(inside), sum(wt for _, wt in inside))


def test_time_index_at_the_window_edge_and_with_nan():
    index = TimeIndex()
    for at in (0.0, 0.1, 0.2, math.nan, math.inf):
        index.add(at, 1)
    assert index.window(3600.0, 3600.0) == (3, 3)  # 3600 - 0.0 is not < 3600
    kept = (0.0, 0.1, 0.2, math.inf)
    assert index.window(3600.1, 3600.0)[0] == sum(1 for a in kept if 3600.1 - a < 3600)
    assert index.window(1.0, 1e-9) == (1, 1)  # only +inf: `1 - inf < x` always
    assert len(index) == 4  # nan is in no window, so it is not kept


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b"]),
            st.integers(0, 1_000),
            st.booleans(),
            st.booleans(),
            st.integers(80, 120),
        ),
        max_size=30,
    ),
    times,
    st.floats(min_value=0.001, max_value=2_000),
)
def test_ledger_counts_and_gas_match_a_scan(rows, now, window):
    ledger = TradeLedger(numeraire=DUSD)
    for strategy, at, buy, moved, out in rows:
        ledger.add(trade(float(at), strategy=strategy, buy=buy, out=out, moved=moved))
    for strategy in ("a", "b", "nobody"):
        scan = sum(
            1
            for t in ledger.trades
            if t.strategy == strategy and now - t.at < window and moved_assets(t)
        )
        assert ledger.count(strategy, now, window) == scan
    assert ledger.gas_wei(now, window) == sum(
        t.gas_cost_wei for t in ledger.trades if now - t.at < window
    )


def scanned_streak(book: PositionBook, strategy: str) -> tuple[int, float | None]:
    """The losing streak as the book used to compute it: walking back over every close."""
    streak, last = 0, None
    for at, pnl in reversed(book.closes.get(strategy, [])):
        if pnl >= 0:
            break
        streak += 1
        last = at if last is None else last
    return streak, last


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), st.integers(90, 110)), max_size=30))
def test_losing_streak_is_kept_as_closes_arrive_and_matches_a_walk_back(closes):
    book = PositionBook(DUSD)
    for i, (strategy, out) in enumerate(closes):
        book.apply(trade(float(2 * i), strategy=strategy, buy=True))
        book.apply(trade(float(2 * i + 1), strategy=strategy, buy=False, out=out))
        for s in ("a", "b", "c"):
            assert book.losing_streak(s) == scanned_streak(book, s)


def test_spend_total_is_exact_and_an_infinite_spend_fills_the_window(tmp_path):
    spend = SpendLedger(100)
    for i in range(1_000):
        spend.add(float(i), 0.1)
    # The last 100 spends, totalled exactly (not 1,000 additions and subtractions' rounding).
    assert spend.spent(999.5) == 10.0
    assert spend.spent(10_000.0) == 0.0  # everything left the window: exactly nothing
    spend.add(10_001.0, math.inf)
    assert spend.spent(10_002.0) == math.inf
    assert spend.spent(10_200.0) == 0.0  # and it leaves the window like any other
    kept = SpendLedger(100, tmp_path / "spend.jsonl")
    for t, v in ((1.0, 0.1), (2.0, 0.2), (3.0, 0.7)):
        kept.add(t, v)
    assert SpendLedger(100, tmp_path / "spend.jsonl").spent(50.0) == kept.spent(50.0) == 1.0


class NoScan(list):
    """A trade list that fails the test when anything walks it."""

    def __iter__(self):
        raise AssertionError("the per-intent path scanned the whole trade history")

    def __reversed__(self):
        raise AssertionError("the per-intent path scanned the whole trade history")


def test_per_intent_guard_and_risk_never_scan_the_history():
    """The agent's per-intent step over 20,000 past trades, with the trade list booby-trapped:
    the figures come from the indexes, they are the ones a scan gives, and the rules act on
    them (a loss cooldown started by the latest close holds the strategy)."""
    ledger = TradeLedger(numeraire=DUSD)
    for i in range(20_000):
        at = NOW - 7_200 - (20_000 - i) * 60.0
        ledger.add(trade(at, buy=i % 2 == 0, out=95))  # every close a loss
    ledger.add(trade(NOW - 100.0, buy=True))
    ledger.add(trade(NOW - 50.0, buy=False, out=90))  # one more loss, just now
    in_day = [t for t in ledger.trades if NOW - t.at < 86_400]
    ledger.trades = NoScan(ledger.trades)
    guard = Guard(build_rules())
    desk = RiskDesk({"s": StrategyRisk(guard=guard, exits=build_exit_rules())}, ledger)
    ctx = desk.context_for("s", w.context())
    assert ctx.risk.trades_in_window == 2
    assert (ctx.risk.consecutive_losses, ctx.risk.last_loss_at) == (10_001, NOW - 50.0)
    assert ctx.risk.gas_spent_wei == sum(t.gas_cost_wei for t in in_day)
    amount = 100 * E18
    buy = SwapExactIn(
        token_in=DUSD,
        token_out=DTKN,
        amount_in=amount,
        min_amount_out=w.market().quote_out([DUSD, DTKN], amount) * 995 // 1000,
    )
    swap = w.plan(buy, **{DUSD: 10**30})[-1]
    decision = guard.decide(swap, ctx)
    assert {v.rule for v in decision.refusals} == {"loss-cooldown"}
    assert "10001 losing trades in a row" in decision.reason()


class ScanningHistory:
    """The loss window's high as PortfolioHistory computed it before: a scan per read."""

    def __init__(self, loss_window: float, keep: float | None) -> None:
        self.loss_window, self.keep = loss_window, keep or loss_window
        self.points: list[tuple[float, float]] = []

    def record(self, t: float, value: float) -> None:
        self.points.append((t, value))
        while self.points and t - self.points[0][0] > self.keep:
            self.points.pop(0)

    def loss_pct(self, t: float, value: float) -> float:
        high = max([v for ts, v in self.points if t - ts <= self.loss_window] + [value])
        return (high - value) / high * 100 if high > 0 else 0.0


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.booleans(),  # record, or read the state
            st.floats(min_value=-5, max_value=60, allow_nan=False),  # time step (may go back)
            st.floats(min_value=0, max_value=1_000, allow_nan=False),
        ),
        max_size=60,
    ),
    st.sampled_from([10.0, 30.0]),
    st.sampled_from([None, 5.0, 60.0]),
)
def test_portfolio_loss_window_matches_a_scan(steps, window, keep):
    from defiagent.risk.pnl import PortfolioHistory

    fast = PortfolioHistory(loss_window_seconds=window, keep_seconds=keep)
    slow = ScanningHistory(window, keep)
    t = 0.0
    for is_record, step, value in steps:
        t += step
        if is_record:
            fast.record(t, value)
            slow.record(t, value)
        else:
            assert fast.state(t, value).loss_pct_in_window == slow.loss_pct(t, value)


def test_portfolio_loss_window_reads_in_constant_time_over_a_long_day():
    """A day of 2-second ticks (43,200 points in the window): the high is still right, and
    each read pops at most what left the window."""
    from defiagent.risk.pnl import PortfolioHistory

    history = PortfolioHistory(loss_window_seconds=86_400)
    for i in range(43_200):
        history.record(i * 2.0, 100_000.0 + (i % 1000))
    history.points = NoScan(history.points)  # any scan of the points fails the test
    state = history.state(86_398.0, 99_000.0)
    assert state.loss_pct_in_window == pytest.approx((100_999 - 99_000) / 100_999 * 100)
