"""`defiagent report` through the CLI entry point: exit codes, --json, --html, locating the log."""

from __future__ import annotations

import json

import pytest

from defiagent.cli.app import main
from defiagent.reporting import AUDIT_FILE
from tests.reporting.day import XSS


@pytest.fixture
def state(day_dir):
    return day_dir


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


def test_json_report(state, capsys):
    state_dir, exp = state
    assert main(["report", "--state-dir", str(state_dir), "--json"]) == 0
    out = _json(capsys)
    assert out["ok"] is True
    report = out["report"]
    assert report["summary"]["trades"] == exp.trades
    assert report["summary"]["realized_pnl"] == pytest.approx(exp.realized_pnl)
    assert report["refusals_by_rule"] == exp.refusals_by_rule
    found = {f["bound_name"] for f in report["drift"]["findings"]}
    assert found == {"max_trades_per_day", "max_slippage_bps"}


def test_terminal_report(state, capsys):
    state_dir, _exp = state
    assert main(["report", "--audit-log", str(state_dir / AUDIT_FILE)]) == 0
    out = capsys.readouterr().out
    assert "Behaviour report" in out
    assert "per-tx-value-cap" in out
    assert "<script>alert" in out  # rich markup in log text is printed, not interpreted
    assert "trades/day 6 above the mandate's 4" in out


def test_state_dir_from_the_environment(state, capsys, monkeypatch):
    state_dir, exp = state
    monkeypatch.setenv("DEFIAGENT_STATE_DIR", str(state_dir))
    assert main(["report", "--json", "--since", "2025-06-01T12:00"]) == 0
    assert _json(capsys)["report"]["summary"]["trades"] == exp.trades_after_noon


def test_html_and_json(state, tmp_path, capsys):
    state_dir, _ = state
    page = tmp_path / "out" / "report.html"
    assert main(["report", "--state-dir", str(state_dir), "--html", str(page), "--json"]) == 0
    assert _json(capsys)["html"] == str(page)
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>")
    assert XSS not in text


def test_mandate_file(state, tmp_path, capsys):
    state_dir, _ = state
    mandate = tmp_path / "mandate.toml"
    mandate.write_text("[mandate]\nmax_trades_per_day = 3\nmax_trade_value = 1005\n")
    args = ["report", "--state-dir", str(state_dir), "--mandate", str(mandate), "--json"]
    assert main(args) == 0
    drift = _json(capsys)["report"]["drift"]
    assert drift["source"] == str(mandate)
    assert {f["bound_name"] for f in drift["findings"]} == {"max_trades_per_day", "max_trade_value"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--state-dir", "{state}", "--since", "last tuesday"], "--since"),
        (["--state-dir", "{state}", "--mandate", "{missing}"], "cannot be read"),
        (["--state-dir", "{state}", "--mandate", "{bad}"], "max_trades_per_day"),
        (["--audit-log", "{state}/nope.jsonl"], "does not exist"),
        (["--state-dir", "{state}", "--audit-log", "{state}/audit.jsonl"], "only one of"),
    ],
)
def test_usage_errors_exit_2(state, tmp_path, capsys, args, message):
    state_dir, _ = state
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"max_trades_per_day": -1}))
    args = [a.format(missing=tmp_path / "missing.toml", bad=bad, state=state_dir) for a in args]
    assert main(["report", *args, "--json"]) == 2
    out = _json(capsys)
    assert out["ok"] is False
    assert message in out["error"]["message"]


def test_a_broken_chain_exits_1_after_writing_the_report(state, tmp_path, capsys):
    state_dir, exp = state
    log = state_dir / AUDIT_FILE
    lines = log.read_text().splitlines(keepends=True)
    del lines[10]  # a record removed from the middle
    log.write_text("".join(lines))
    page = tmp_path / "report.html"

    assert main(["report", "--state-dir", str(state_dir), "--html", str(page)]) == 1
    captured = capsys.readouterr()
    assert "BROKEN" in captured.err
    assert "broken at line 11" in captured.err
    assert 'id="chain-broken"' in page.read_text()

    assert main(["report", "--state-dir", str(state_dir), "--json"]) == 1
    out = _json(capsys)
    assert out["ok"] is False
    assert out["error"]["exit_code"] == 1
    assert out["report"]["chain"]["problem_line"] == 11
    assert out["report"]["summary"]["trades"] == exp.trades - 1  # line 11 was a trade


def test_audit_file_name_matches_the_runtime():
    from defiagent.agent.runtime import AUDIT_FILE as RUNTIME

    assert AUDIT_FILE == RUNTIME
