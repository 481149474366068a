"""Each risk limit fires on the state it exists for, pauses entries only, and reports usage.

Exits (selling into the numeraire) are never paused: a limit that stops the agent from
giving risk back would turn a loss limit into a bigger loss.
"""

from __future__ import annotations

import dataclasses

import pytest

from defiagent.errors import ConfigError
from defiagent.guard.base import RiskState
from defiagent.guard.guard import Guard
from defiagent.guard.registry import RiskSection, build_exit_rules, build_rules, merge_section
from defiagent.monitoring.events import TradeEvent
from defiagent.risk.exits import StopLoss, TakeProfit
from defiagent.risk.positions import Position, PositionBook
from defiagent.risk.trades import TradeLedger
from defiagent.strategy.intents import SwapExactIn
from tests.guard import world as w
from tests.guard.world import DTKN, DUSD, E18, NOW, context, plan, refused_by

CALM = RiskState(
    value_now=120_000.0,
    loss_pct_in_window=0.0,
    drawdown_pct=0.0,
    position_values={DUSD: 50_000.0, DTKN: 50_000.0, "ETH": 20_000.0},
)


def buy(amount=100 * E18):
    min_out = w.market().quote_out([DUSD, DTKN], amount) * 995 // 1000
    intent = SwapExactIn(token_in=DUSD, token_out=DTKN, amount_in=amount, min_amount_out=min_out)
    return plan(intent, **{DUSD: 10**30})[-1]


def sell(amount=100 * E18):
    min_out = w.market().quote_out([DTKN, DUSD], amount) * 995 // 1000
    intent = SwapExactIn(token_in=DTKN, token_out=DUSD, amount_in=amount, min_amount_out=min_out)
    return plan(intent, **{DTKN: 10**30})[-1]


def guard(**risk) -> Guard:
    return Guard(build_rules(risk=merge_section(RiskSection(), risk, "test")))


def decide(call, g=None, **risk_fields):
    ctx = context(risk=dataclasses.replace(CALM, **risk_fields))
    return (g or guard()).decide(call, ctx)


def test_calm_state_allows_buying_and_selling():
    assert decide(buy()).allowed, decide(buy()).reason()
    assert decide(sell()).allowed


@pytest.mark.parametrize(
    ("fields", "rule", "figure"),
    [
        ({"trades_in_window": 30}, "max-trades", "30 trades"),
        ({"consecutive_losses": 3, "last_loss_at": NOW - 10}, "loss-cooldown", "3 losing"),
        ({"gas_spent_wei": 6 * 10**17}, "max-gas", "0.600000 ETH"),
        ({"loss_pct_in_window": 2.5}, "max-daily-loss", "2.50%"),
        ({"drawdown_pct": 11.0}, "max-drawdown", "11.00%"),
    ],
)
def test_each_pausing_limit_refuses_entries_with_its_figures_and_allows_exits(fields, rule, figure):
    d = decide(buy(), **fields)
    assert refused_by(d) == {rule}
    assert figure in d.reason()
    assert decide(sell(), **fields).allowed


def test_cooldown_ends_after_its_time():
    assert refused_by(decide(buy(), consecutive_losses=5, last_loss_at=NOW - 100)) == {
        "loss-cooldown"
    }
    assert decide(buy(), consecutive_losses=5, last_loss_at=NOW - 3_601).allowed


def test_position_value_cap_overall_and_per_asset():
    # 50,000 DUSD of DTKN already held; buying 100 DUSD more crosses a 50,010 cap.
    d = decide(buy(), g=guard(max_position={"max_value": 50_010}))
    assert refused_by(d) == {"max-position"}
    assert "limit 50,010.00" in d.reason()
    d = decide(buy(), g=guard(max_position={"per_asset": {DTKN: 50_010}}))
    assert refused_by(d) == {"max-position"}
    assert decide(buy(), g=guard(max_position={"per_asset": {DUSD: 1}})).allowed
    assert decide(sell(), g=guard(max_position={"max_value": 1})).allowed


def test_strategy_capital_share():
    g = guard(strategy_capital={"max_capital_pct": 40})
    assert decide(buy(), g=g, strategy_exposure=47_000.0).allowed  # 39.3% after
    d = decide(buy(), g=g, strategy_exposure=48_000.0)  # 40.07% after
    assert refused_by(d) == {"strategy-capital"}
    assert "40.1% of the capital" in d.reason()


def test_unknown_risk_section_or_bad_value_is_a_config_error():
    with pytest.raises(ConfigError, match="no such risk section"):
        merge_section(RiskSection(), {"nope": {}}, "strategy x: risk")
    with pytest.raises(ConfigError, match="max_trades"):
        merge_section(RiskSection(), {"max_trades": {"max_trades": 0}}, "strategy x: risk")


def test_usage_reports_how_much_of_each_limit_is_used():
    ctx = context(risk=dataclasses.replace(CALM, trades_in_window=15, gas_spent_wei=25 * 10**16))
    usage = {
        u.rule: u.ratio
        for r in build_rules()
        if hasattr(r, "usage") and (u := r.usage(ctx)) is not None
    }
    assert usage["max-trades"] == pytest.approx(0.5)
    assert usage["max-gas"] == pytest.approx(0.5)
    assert usage["max-position"] == pytest.approx(50_000 / 120_000 * 100 / 80)


def trade(at, kind_in, kind_out, amount_in, amount_out, value_in, value_out, strategy="s"):
    return TradeEvent(
        at=at,
        strategy=strategy,
        intent_id=f"i{at}",
        kind="swap-exact-in",
        token_in=kind_in,
        token_out=kind_out,
        amount_in=amount_in,
        amount_out=amount_out,
        value_in=value_in,
        value_out=value_out,
    )


def test_position_book_average_cost_realized_pnl_and_losing_streak(tmp_path):
    path = tmp_path / "trades.jsonl"
    ledger = TradeLedger(path, numeraire=DUSD)
    ledger.add(trade(1, DUSD, DTKN, 100, 200, 100.0, 100.0))  # buy 200 DTKN for 100
    ledger.add(trade(2, DUSD, DTKN, 100, 100, 100.0, 100.0))  # 100 more for 100: avg 0.667
    pos = ledger.book.of("s")[0]
    assert (pos.amount, pos.cost) == (300, pytest.approx(200.0))
    sold = ledger.add(trade(3, DTKN, DUSD, 150, 90, 90.0, 90.0))  # half, for 90: -10
    assert sold.realized_pnl == pytest.approx(-10.0)
    again = ledger.add(trade(4, DTKN, DUSD, 150, 80, 80.0, 80.0))  # the rest for 80: -20
    assert again.realized_pnl == pytest.approx(-20.0)
    assert ledger.book.of("s") == []
    assert ledger.book.losing_streak("s") == (2, 4)
    assert ledger.count("s", now=5, window=10) == 4
    # Rebuilt from the file after a restart: same positions, same streak.
    reloaded = TradeLedger(path, numeraire=DUSD)
    assert reloaded.book.losing_streak("s") == (2, 4)
    assert [t.realized_pnl for t in reloaded.trades][-2:] == [-10.0, -20.0]
    ledger.add(trade(6, DUSD, DTKN, 10, 10, 10.0, 10.0))
    ledger.add(trade(7, DTKN, DUSD, 10, 12, 12.0, 12.0))  # a win ends the streak
    assert ledger.book.losing_streak("s") == (0, None)


def test_selling_what_a_strategy_did_not_buy_realizes_nothing():
    book = PositionBook(DUSD)
    assert book.apply(trade(1, DTKN, DUSD, 100, 50, 50.0, 50.0)) is None
    assert book.positions == {}


def test_stop_loss_and_take_profit_fire_at_their_thresholds():
    stop, take = build_exit_rules()
    assert isinstance(stop, StopLoss)
    assert isinstance(take, TakeProfit)
    pos = Position("s", DTKN, amount=100, cost=100.0, opened_at=0)
    assert stop.exit_reason(pos, 0.91) is None
    reason = stop.exit_reason(pos, 0.89)
    assert reason is not None
    assert "11.00% below its cost" in reason
    assert take.exit_reason(pos, 1.29) is None
    assert "30.00% above" in (take.exit_reason(pos, 1.30) or "")
    assert stop.exit_reason(pos, None) is None  # no sane price: no decision on it
    disabled = build_exit_rules(
        merge_section(RiskSection(), {"take_profit": {"enabled": False}}, "t")
    )
    assert [r.id for r in disabled] == ["stop-loss"]
