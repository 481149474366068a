"""The behaviour report built from a real audit log: figures, periods, a broken chain."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from html.parser import HTMLParser

import pytest

from defiagent.errors import ConfigError
from defiagent.monitoring.audit_log import AuditLog
from defiagent.reporting import AUDIT_FILE, build_report, parse_since, render_html
from defiagent.strategy.mandate import Mandate
from tests.reporting.day import DAY, clocked, value_at, write_day


@pytest.fixture
def day(day_dir):
    state_dir, expected = day_dir
    return state_dir / AUDIT_FILE, expected


def test_figures_of_a_day(day):
    path, exp = day
    r = build_report(path)
    s = r.summary
    assert r.chain.ok
    assert r.agent == "0x1111111111111111111111111111111111111111"
    assert r.strategies == ["mean-reversion"]
    assert s.trades == len(r.trades) == exp.trades
    assert s.realized_pnl == pytest.approx(exp.realized_pnl)
    assert (s.winning_trades, s.closed_trades) == (exp.wins, exp.closed)
    assert s.win_rate == pytest.approx(2 / 3)
    assert s.traded_value == pytest.approx(exp.traded_value)
    assert s.gas_cost_value == pytest.approx(0.25 * exp.trades)
    assert s.mean_slippage_bps == pytest.approx((10 + 20 + 15 + 25 + 12 + 18) / 6)
    assert (s.intents, s.executed, s.failed) == (exp.intents, exp.executed, exp.failed)
    assert s.refused_intents == exp.refused_intents
    assert r.refusals_by_rule == exp.refusals_by_rule
    assert next(iter(r.refusals_by_rule)) == "per-tx-value-cap"  # most frequent first
    top = r.refusals_by_reason[0]
    assert (top.rule, top.reason, top.count) == (
        "per-tx-value-cap",
        "outflow 5000.00 above the cap of 2000.00",
        2,
    )
    assert all(x.strategy == "mean-reversion" for x in r.refusals)  # joined from "intent"
    assert (s.value_start, s.value_end) == (exp.value_start, exp.value_end)
    assert s.value_change == pytest.approx(exp.value_end - exp.value_start)
    assert s.pnl_end == pytest.approx(exp.value_end - 10_000)
    peak = value_at(12)
    assert s.max_drawdown_pct == pytest.approx((peak - value_at(20)) / peak * 100)
    assert len(r.value_series) == 24
    assert all(p.source == "risk" for p in r.value_series)
    assert len(r.exposure_series) == 24
    assert set(r.exposure_series[0].exposure) == {"WETH", "USDC"}
    limits = {lim.rule: lim for lim in r.limits}
    assert limits["window-value-cap"].used == 7000
    assert limits["window-value-cap"].ratio == 0.7
    assert limits["max-drawdown"].max_ratio == pytest.approx(s.max_drawdown_pct / 10)
    assert limits["max-drawdown"].max_at.startswith("2025-06-01T20:")
    assert r.paused == {"mean-reversion": "drawdown"}
    assert [a.title for a in r.alerts] == ["max-drawdown paused mean-reversion"]
    assert r.alerts[0].severity == "warning"
    assert [(k.on, k.changed_by) for k in r.kill_switch] == [(True, "cli:ops"), (False, "cli:ops")]
    assert s.kill_switch_on is False
    assert [f.reason for f in r.failures] == ["reverted on chain"]
    assert [t.token_in_label for t in r.trades[:2]] == ["USDC", "WETH"]  # allowlist names
    assert r.period_start == "2025-06-01T00:00:00+00:00"
    assert r.period_end.startswith("2025-06-01T23:")


def test_drift_from_the_start_records_mandate(day):
    path, _ = day
    r = build_report(path)
    assert r.drift.source == "config"
    assert r.drift.mandate == Mandate(max_trades_per_day=4, max_slippage_bps=15)
    found = {f.bound_name: f for f in r.drift.findings}
    assert set(found) == {"max_trades_per_day", "max_slippage_bps"}
    assert found["max_trades_per_day"].live == 6
    assert found["max_trades_per_day"].message.startswith("trades/day 6 above the mandate's 4")
    # the worst window mean: the first four trades (10, 20, 15, 25 bps)
    assert found["max_slippage_bps"].live == pytest.approx(17.5)


def test_a_mandate_file_overrides_the_config(day, tmp_path):
    path, _ = day
    r = build_report(path, mandate=Mandate(max_trades_per_day=10), mandate_source="m.toml")
    assert r.drift.source == "m.toml"
    assert r.drift.findings == []


def test_a_bad_mandate_in_the_log_is_reported_not_fatal(tmp_path):
    path = tmp_path / AUDIT_FILE
    write_day(path, mandate={"max_trades_per_day": "lots"})
    r = build_report(path)
    assert r.drift.mandate is None
    assert "max_trades_per_day" in r.drift.error


def test_no_mandate_no_drift(tmp_path):
    path = tmp_path / AUDIT_FILE
    write_day(path)
    r = build_report(path)
    assert r.drift.mandate is None
    assert r.drift.findings == []
    assert r.drift.error is None


def test_since_keeps_the_afternoon(day):
    path, exp = day
    r = build_report(path, since=parse_since("2025-06-01T12:00:00"))
    assert r.since == "2025-06-01T12:00:00+00:00"
    assert r.period_start == "2025-06-01T12:00:00+00:00"
    assert r.summary.trades == exp.trades_after_noon
    assert sum(r.refusals_by_rule.values()) == exp.refusals_after_noon
    assert r.summary.value_start == value_at(12)
    assert len(r.value_series) == 12
    assert r.agent is not None  # context still read from the start record before --since
    assert r.drift.mandate is not None
    # the next day has nothing
    empty = build_report(path, since=parse_since("2025-06-02"))
    assert empty.summary.records == 0
    assert empty.trades == []
    assert empty.period_end is None
    render_html(empty)  # an empty period still renders


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-06-01", datetime(2025, 6, 1, tzinfo=UTC)),
        ("2025-06-01T12:30", datetime(2025, 6, 1, 12, 30, tzinfo=UTC)),
        ("2025-06-01T12:30:00Z", datetime(2025, 6, 1, 12, 30, tzinfo=UTC)),
        ("2025-06-01T14:30:00+02:00", datetime(2025, 6, 1, 12, 30, tzinfo=UTC)),
    ],
)
def test_parse_since(text, expected):
    assert parse_since(text) == expected


@pytest.mark.parametrize("text", ["yesterday", "2025-13-01", "01/06/2025", ""])
def test_parse_since_refuses_what_it_cannot_read(text):
    with pytest.raises(ConfigError, match="--since"):
        parse_since(text)


def test_a_broken_chain_still_reports_with_a_banner(day):
    path, exp = day
    lines = path.read_bytes().splitlines(keepends=True)
    for i, line in enumerate(lines):
        rec = json.loads(line)
        if rec["kind"] == "trade" and rec["payload"]["intent_id"] == "intent-2":
            rec["payload"]["realized_pnl"] = 5000.0  # someone makes a loss look like a win
            lines[i] = (json.dumps(rec, separators=(",", ":")) + "\n").encode()
            edited = i + 1
            break
    path.write_bytes(b"".join(lines))
    r = build_report(path)
    assert not r.chain.ok
    assert r.chain.problem_line == edited
    assert "edited" in r.chain.problem
    assert r.summary.trades == exp.trades  # still shown
    assert "BROKEN" in r.chain.banner
    assert str(edited) in r.chain.banner
    page = render_html(r, charts=False)
    assert 'id="chain-broken"' in page


def test_snapshot_values_when_there_are_no_risk_records(tmp_path):
    path = tmp_path / AUDIT_FILE
    with clocked(path) as w:
        for hour, value in enumerate([100.0, 110.0, 99.0, 105.0]):
            w.at(DAY.replace(hour=hour), "snapshot", {"tick": hour, "portfolio_value": value})
        w.at(DAY.replace(hour=5), "snapshot", {"tick": 5, "portfolio_value": None})
    r = build_report(path)
    assert [p.value for p in r.value_series] == [100.0, 110.0, 99.0, 105.0]
    assert [p.pnl for p in r.value_series] == [0.0, 10.0, -1.0, 5.0]
    assert all(p.source == "snapshot" for p in r.value_series)
    assert r.summary.max_drawdown_pct == pytest.approx(10.0)
    assert r.summary.value_change == 5.0


def test_odd_payloads_are_counted_not_fatal(tmp_path):
    path = tmp_path / AUDIT_FILE
    with AuditLog(path) as log:
        log.record("trade", {"not": "a trade"})
        log.record("risk", {"at": "soon"})
        log.record("refused", {"intent_id": 1, "refusals": ["x", {"rule": None}]})
        log.record("alert", {"title": ["a", "list"]})
        log.record("kill-switch", {"on": "yes"})
    r = build_report(path)
    assert r.summary.unreadable_lines == 2
    assert r.refusals_by_rule == {"(unnamed)": 1}
    assert r.kill_switch[0].on is False
    render_html(r)


def test_a_missing_log_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        build_report(tmp_path / "nope.jsonl")


def test_untrusted_text_is_escaped_in_the_page(day):
    path, _ = day
    page = render_html(build_report(path))
    assert "<script>" not in page
    assert "onerror=alert" not in page.replace("onerror=alert(1)&gt;", "")
    assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in page
    assert "Content-Security-Policy" in page


def test_untrusted_labels_in_charts_are_escaped(tmp_path):
    """Asset symbols and rule names reach the SVG: escaped there too, and `$` is no math."""
    from defiagent.monitoring.events import LimitUsage, RiskEvent

    path = tmp_path / AUDIT_FILE
    evil = "<script>x</script>$\\frac{"
    with clocked(path) as w:
        for hour in range(3):
            w.at(
                DAY.replace(hour=hour),
                "risk",
                RiskEvent(
                    at=0,
                    tick=hour,
                    portfolio_value=100.0 + hour,
                    pnl=float(hour),
                    exposure={evil: 50.0, "WETH": 50.0 + hour},
                    limits=[LimitUsage(rule=evil, used=1, limit=2)],
                ).model_dump(),
            )
        w.at(DAY.replace(hour=4), "refused", {"intent_id": "i", "refusals": [{"rule": evil}]})
    page = render_html(build_report(path))
    assert page.count("<svg") == 4
    assert "<script>" not in page
    assert "&lt;script&gt;x&lt;/script&gt;$\\frac{" in page


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_the_page_is_self_contained(day):
    path, _ = day
    page = render_html(build_report(path))
    parser = _Tags()
    parser.feed(page)
    names = {tag for tag, _ in parser.tags}
    assert {"table", "svg", "style"} <= names
    assert not names & {"script", "link", "img", "iframe", "object", "embed"}
    for tag, attrs in parser.tags:
        assert "src" not in attrs, tag
        for key in ("href", "xlink:href"):
            assert attrs.get(key) is None or attrs[key].startswith("#"), (tag, attrs)
        assert not any(k.startswith("on") for k in attrs), (tag, attrs)
    assert "@import" not in page
    assert not re.search(r"url\((?!#)", page)  # only the SVG's own clip paths
