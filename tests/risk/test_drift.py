"""Drift detection: each bound fires when breached, not when inside, not on too little data."""

from __future__ import annotations

import json

import pytest

from defiagent.errors import ConfigError
from defiagent.monitoring.events import TradeEvent
from defiagent.monitoring.interfaces import AlertKind, AlertSeverity
from defiagent.risk.drift import DriftFinding, DriftMonitor, judge, scan
from defiagent.strategy.mandate import Mandate

H = 3600.0
T0 = 1_750_000_000.0


def trade(at: float, *, strategy: str = "s", **kw) -> TradeEvent:
    fields = {"value_in": 100.0, "portfolio_value": 10_000.0, "slippage_bps": 5.0} | kw
    return TradeEvent(at=at, strategy=strategy, intent_id=f"i{at}", kind="swap-exact-in", **fields)


def hourly(n: int, **kw) -> list[TradeEvent]:
    return [trade(T0 + i * H, **kw) for i in range(n)]


def metrics(findings: list[DriftFinding]) -> set[str]:
    return {f.bound_name for f in findings}


NOW = T0 + 23.5 * H


@pytest.mark.parametrize(
    ("mandate", "inside", "breach"),
    [
        (Mandate(max_trade_value=150), hourly(5), [*hourly(4), trade(T0 + 5 * H, value_in=151.0)]),
        (Mandate(max_trade_pct=2), hourly(5), [trade(T0, value_in=300.0)]),
        (Mandate(max_trades_per_day=10), hourly(10), hourly(11)),
        (Mandate(max_turnover_per_day=0.1), hourly(10), hourly(11)),  # 100 of 10k per trade
        (
            Mandate(max_slippage_bps=10),
            hourly(5, slippage_bps=10.0),
            hourly(5, slippage_bps=10.5),
        ),
        (
            Mandate(min_win_rate=0.5, min_closed_trades=4),
            [
                *hourly(2, realized_pnl=1.0),
                *[trade(T0 + 9 * H + i, realized_pnl=-1.0) for i in range(2)],
            ],
            [
                *hourly(1, realized_pnl=1.0),
                *[trade(T0 + 9 * H + i, realized_pnl=-1.0) for i in range(3)],
            ],
        ),
    ],
)
def test_each_bound_fires_when_breached_only(mandate, inside, breach):
    assert judge(inside, mandate, now=NOW, observed_since=T0) == []
    findings = judge(breach, mandate, now=NOW, observed_since=T0)
    assert len(findings) == 1
    f = findings[0]
    assert f.bound_name in mandate.bounds()
    assert f.direction == ("above" if f.bound_name.startswith("max_") else "below")
    assert f.strategy == "s"
    assert f.bound == mandate.bounds()[f.bound_name]
    assert " the mandate's " in f.message


def test_messages_carry_the_figures():
    m = Mandate(
        max_trades_per_day=20, min_win_rate=0.6, min_closed_trades=5, max_turnover_per_day=1
    )
    trades = [
        trade(T0 + i * 60, realized_pnl=1.0 if i < 2 else -1.0, value_in=500.0) for i in range(31)
    ]
    found = {f.bound_name: f.message for f in judge(trades, m, now=T0 + 2 * H)}
    assert found["max_trades_per_day"].startswith("trades/day 31 above the mandate's 20")
    assert found["min_win_rate"].startswith("win rate 6% below the mandate's 60% (2 of 31")
    assert found["max_turnover_per_day"].startswith("turnover/day 155% above the mandate's 100%")


def test_too_little_data_is_not_judged():
    m = Mandate(
        min_trades_per_day=5,
        max_slippage_bps=10,
        min_slippage_trades=3,
        min_win_rate=0.9,
        min_closed_trades=10,
    )
    few = [trade(T0, slippage_bps=50.0, realized_pnl=-1.0), trade(T0 + H, slippage_bps=50.0)]
    # 2 h of watching: the minimum rate waits for a whole window
    assert judge(few, m, now=T0 + 2 * H, observed_since=T0) == []
    # never told when watching began: the minimum rate is never judged
    assert judge(few, m, now=T0 + 30 * H) == []
    # a whole window later, the silence counts
    late = judge(few, m, now=T0 + 24.5 * H, observed_since=T0)
    assert metrics(late) == {"min_trades_per_day"}
    assert late[0].live == 1  # the first trade left the window


def test_trades_outside_the_window_do_not_count():
    m = Mandate(max_trades_per_day=3, window_hours=6)
    trades = hourly(12)  # 6 per 6 h = 24/day
    assert metrics(judge(trades, m, now=T0 + 11.5 * H)) == {"max_trades_per_day"}
    assert judge(trades, m, now=T0 + 30 * H) == []
    # a 6-hour window scales to a day: 1 trade in 6 h is 4/day
    (f,) = judge(hourly(1), Mandate(max_trades_per_day=3, window_hours=6), now=T0 + H)
    assert f.live == 4


def test_each_strategy_is_judged_on_its_own():
    m = Mandate(max_trades_per_day=3, min_trades_per_day=1)
    trades = hourly(4, strategy="busy")
    found = judge(trades, m, now=T0 + 4 * H, observed_since=T0 - 24 * H, strategies=["idle"])
    assert {(f.strategy, f.bound_name) for f in found} == {
        ("busy", "max_trades_per_day"),
        ("idle", "min_trades_per_day"),
    }


def test_monitor_observes_and_forgets():
    clock = [T0]
    monitor = DriftMonitor(Mandate(max_trades_per_day=2), clock=lambda: clock[0])
    for t in hourly(3):
        monitor.observe(t)
    clock[0] = T0 + 3 * H
    (f,) = monitor.check()
    assert f.live == 3
    assert f.at == T0 + 3 * H
    clock[0] = T0 + 25.5 * H  # the first two trades left the window
    assert monitor.check() == []
    assert len(monitor._trades) == 1


def test_monitor_min_rate_counts_from_its_start():
    clock = [T0]
    monitor = DriftMonitor(Mandate(min_trades_per_day=2), clock=lambda: clock[0], strategies=["s"])
    assert monitor.check(T0 + 23 * H) == []
    assert metrics(monitor.check(T0 + 24 * H)) == {"min_trades_per_day"}


def test_finding_to_alert():
    (f,) = judge(hourly(31), Mandate(max_trades_per_day=20), now=T0 + 31 * H - 1)
    alert = f.to_alert("0xagent")
    assert alert.kind is AlertKind.DRIFT
    assert alert.severity is AlertSeverity.WARNING
    assert alert.agent == "0xagent"
    assert alert.strategy == "s"
    assert alert.detail == f.message
    assert "trades/day" in alert.title
    assert "31" not in alert.title  # figures in the detail: repeats throttle on the title
    assert alert.data["live"] == 24
    assert f.to_alert(severity=AlertSeverity.CRITICAL).severity is AlertSeverity.CRITICAL


def test_scan_keeps_the_worst_of_each_breach():
    m = Mandate(max_trades_per_day=5, max_trade_value=150)
    trades = [*hourly(8), trade(T0 + 9 * H, value_in=160.0), trade(T0 + 10 * H, value_in=200.0)]
    found = scan(trades, m, start=T0, end=T0 + 12 * H)
    by = {f.bound_name: f for f in found}
    assert set(by) == {"max_trades_per_day", "max_trade_value"}
    assert by["max_trades_per_day"].live == 10
    assert by["max_trade_value"].live == 200
    assert by["max_trade_value"].at == T0 + 10 * H


# --- the mandate ---------------------------------------------------------------------


def test_mandate_load_toml_and_json(tmp_path):
    toml = tmp_path / "m.toml"
    toml.write_text("max_trades_per_day = 20\nmin_win_rate = 0.4\nwindow_hours = 12\n")
    assert Mandate.load(toml) == Mandate(max_trades_per_day=20, min_win_rate=0.4, window_hours=12)
    table = tmp_path / "t.toml"
    table.write_text("[mandate]\nmax_slippage_bps = 30\n")
    assert Mandate.load(table).max_slippage_bps == 30
    js = tmp_path / "m.json"
    js.write_text(json.dumps({"max_trade_value": 500}))
    assert Mandate.load(js).max_trade_value == 500


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max_trades_per_dya = 3", "max_trades_per_dya"),
        ("min_win_rate = 1.5", "min_win_rate"),
        ("min_trades_per_day = 5\nmax_trades_per_day = 2", "above max_trades_per_day"),
        ("max_trades_per_day = ", "not valid"),
    ],
)
def test_mandate_load_errors(tmp_path, text, message):
    path = tmp_path / "m.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        Mandate.load(path)


def test_mandate_is_frozen():
    with pytest.raises(ValueError, match="frozen"):
        Mandate().max_trade_value = 3  # type: ignore[misc]


def test_from_backtest():
    # 3 days of a backtest: 4, 6 and 2 trades; values up to 400 on a 10k portfolio
    trades = []
    for day, n in enumerate([4, 6, 2]):
        for i in range(n):
            trades.append(
                trade(
                    T0 + day * 24 * H + i * H,
                    value_in=100.0 * (1 + i % 4),
                    slippage_bps=[4.0, 8.0][i % 2],
                    realized_pnl=[1.0, -1.0, 2.0][i % 3] if i % 2 else None,
                )
            )
    m = Mandate.from_backtest(trades, margin=0.5, min_closed_trades=5)
    assert m.max_trade_value == pytest.approx(400 * 1.5)
    assert m.max_trade_pct == pytest.approx(4 * 1.5)
    assert m.max_trades_per_day == pytest.approx(6 * 1.5)
    assert m.min_trades_per_day == pytest.approx(4 / 1.5)  # whole days only: 4 and 6
    day2_turnover = (100 + 200 + 300 + 400 + 100 + 200) / 10_000
    assert m.max_turnover_per_day == pytest.approx(day2_turnover * 1.5)
    assert m.max_slippage_bps == pytest.approx(6.0 * 1.5 + 1)
    closed = [t.realized_pnl for t in trades if t.realized_pnl is not None]
    rate = sum(1 for p in closed if p > 0) / len(closed)
    assert m.min_win_rate == pytest.approx(rate / 1.5)
    # the backtest itself stays inside its own mandate, at every moment
    assert scan(trades, m, start=T0, end=trades[-1].at) == []


def test_from_backtest_with_little_data():
    m = Mandate.from_backtest(hourly(3, slippage_bps=None), margin=0)
    assert m.max_trades_per_day == 3
    assert m.min_trades_per_day is None  # no whole window
    assert m.min_win_rate is None  # no closing trades
    assert m.max_slippage_bps is None
    assert Mandate.from_backtest([]) == Mandate()
    with pytest.raises(ConfigError):
        Mandate.from_backtest(hourly(2), margin=-0.1)
