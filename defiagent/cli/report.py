"""`defiagent report`: what the agent did, read back from its audit log.

Trades, refusals by rule and reason, value and PnL, exposure, limit usage, alerts, kill
switch changes and drift against the strategy's mandate; on the terminal, as JSON, or as
one self-contained HTML page. A broken hash chain still gives the report, with a banner,
and exits 1.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from defiagent.cli.output import console, err_console, plain, print_json
from defiagent.config import DEFAULT_STATE_DIR
from defiagent.errors import ConfigError, Refused
from defiagent.reporting import AUDIT_FILE, BehaviourReport, build_report, parse_since


def _audit_path(config: Path | None, state_dir: Path | None, audit_log: Path | None) -> Path:
    given = [n for n, v in (("--config", config), ("--state-dir", state_dir)) if v is not None]
    if audit_log is not None:
        given.append("--audit-log")
    if len(given) > 1:
        raise ConfigError(f"give only one of {', '.join(given)}")
    if audit_log is not None:
        return audit_log
    if state_dir is None and config is not None:
        from defiagent.config import load_config

        state_dir = load_config(config).state_dir
    if state_dir is None:
        env = os.environ.get("DEFIAGENT_STATE_DIR")
        state_dir = Path(env) if env else DEFAULT_STATE_DIR
    return state_dir / AUDIT_FILE


def _n(value: float | None, digits: int = 2, signed: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value:+,.{digits}f}" if signed else f"{value:,.{digits}f}"


def _time(iso: str) -> str:
    """ "2025-06-01T02:06:00+00:00" -> "06-01 02:06" (the terminal is narrow; all UTC)."""
    return iso[5:16].replace("T", " ")


def _human(report: BehaviourReport, html: Path | None) -> None:
    s = report.summary
    if not report.chain.ok:
        err_console.print(
            Text(f" {report.chain.banner} ", style="bold white on red"), soft_wrap=True
        )
    console.print(
        f"[bold]Behaviour report[/] {escape(report.agent or '')}  "
        f"{report.period_start or '—'} → {report.period_end or '—'}  "
        f"[dim]{escape(report.source)}[/]",
        highlight=False,
    )
    summary = Table(show_header=False, box=None, pad_edge=False)
    summary.add_column(style="dim")
    summary.add_column(justify="right")
    for label, value in (
        ("records", f"{s.records}"),
        ("intents / executed / failed", f"{s.intents} / {s.executed} / {s.failed}"),
        ("refused intents (rule refusals)", f"{s.refused_intents} ({s.refusals})"),
        ("trades (value traded)", f"{s.trades} ({_n(s.traded_value)})"),
        ("value start → end", f"{_n(s.value_start)} → {_n(s.value_end)}"),
        ("value change", _n(s.value_change, signed=True)),
        ("realized PnL", _n(s.realized_pnl, signed=True)),
        (
            "win rate",
            "—"
            if s.win_rate is None
            else f"{s.win_rate:.0%} ({s.winning_trades}/{s.closed_trades})",
        ),
        ("max drawdown", "—" if s.max_drawdown_pct is None else f"{s.max_drawdown_pct:.2f}%"),
        ("mean slippage", "—" if s.mean_slippage_bps is None else f"{s.mean_slippage_bps:.1f} bps"),
        ("alerts", f"{s.alerts}"),
    ):
        summary.add_row(label, value)
    console.print(summary)

    if report.trades:
        title = f"Trades ({len(report.trades)}{', the last 20' if len(report.trades) > 20 else ''})"
        table = Table(title=title, title_justify="left")
        table.add_column("time (UTC)", no_wrap=True)
        table.add_column("strategy", overflow="ellipsis", min_width=8)
        table.add_column("kind", overflow="ellipsis", min_width=8)
        table.add_column("pin", no_wrap=True)  # which pinned code made the trade
        table.add_column("in → out", no_wrap=True)
        for col in ("value in", "slip bps", "realized PnL"):
            table.add_column(col, justify="right", no_wrap=True)
        for row in report.trades[-20:]:
            t = row.trade
            table.add_row(
                _time(row.time),
                Text(t.strategy),
                Text(t.kind + (f" ({t.exit_reason})" if t.exit_reason else "")),
                Text(t.pin or "-"),
                Text(f"{row.token_in_label} → {row.token_out_label}"),
                _n(t.value_in),
                _n(t.slippage_bps, 1),
                _n(t.realized_pnl, signed=True),
            )
        console.print(table)
    if report.refusals_by_reason:
        table = Table(title="Refusals by rule and reason", title_justify="left")
        table.add_column("rule")
        table.add_column("reason", overflow="fold")
        table.add_column("count", justify="right")
        for c in report.refusals_by_reason:
            table.add_row(Text(c.rule), Text(c.reason), str(c.count))
        console.print(table)
    if report.limits:
        table = Table(title="Limit usage", title_justify="left")
        table.add_column("rule")
        for col in ("used", "limit", "latest", "highest"):
            table.add_column(col, justify="right")
        for lim in report.limits:
            table.add_row(
                Text(lim.rule),
                _n(lim.used),
                _n(lim.limit),
                f"{lim.ratio:.0%}",
                f"{lim.max_ratio:.0%}",
            )
        console.print(table)
    for a in report.alerts:
        console.print(
            f"[yellow]alert[/] {_time(a.time)} {escape(a.severity)}: {escape(a.title)}",
            highlight=False,
        )
    for k in report.kill_switch:
        word = "[bold red]ON[/]" if k.on else "[green]off[/]"
        console.print(
            f"kill switch {word} {_time(k.time)} by {escape(k.changed_by)}: {escape(k.reason)}",
            highlight=False,
        )
    drift = report.drift
    if drift.error:
        console.print(f"[red]mandate[/]: {escape(drift.error)}", highlight=False)
    if drift.mandate is not None:
        if drift.findings:
            for f in drift.findings:
                console.print(f"[bold red]drift[/] {escape(f.message)}", highlight=False)
        else:
            console.print(f"[green]no drift[/] against the mandate ({drift.mandate.describe()})")
    if html is not None:
        console.print(f"HTML report written to {escape(str(html))}", highlight=False)


def report(
    config: Path | None = typer.Option(
        None, "--config", "-c", help="agent.toml (its state_dir's audit.jsonl is read)."
    ),
    state_dir: Path | None = typer.Option(
        None, "--state-dir", help="The agent's state dir (default: from --config, else .defiagent)."
    ),
    audit_log: Path | None = typer.Option(None, "--audit-log", help="An audit.jsonl file."),
    since: str | None = typer.Option(
        None, "--since", help="Only records from this ISO date or datetime (UTC by default)."
    ),
    html: Path | None = typer.Option(
        None, "--html", help="Also write a self-contained HTML page with charts here."
    ),
    mandate: Path | None = typer.Option(
        None,
        "--mandate",
        help="A mandate file (TOML or JSON) to judge drift against "
        "(default: the strategy config's mandate in the log).",
    ),
    as_json: bool = typer.Option(False, "--json", help="The report as JSON on stdout."),
) -> None:
    """What the agent did: trades, refusals, PnL, exposure, limits, alerts, drift."""
    moment = parse_since(since) if since is not None else None
    declared = None
    if mandate is not None:
        from defiagent.strategy.mandate import Mandate

        declared = Mandate.load(mandate)
    path = _audit_path(config, state_dir, audit_log)
    result = build_report(
        path,
        since=moment,
        mandate=declared,
        mandate_source=str(mandate) if mandate is not None else None,
    )
    if html is not None:
        from defiagent.reporting import write_html

        write_html(result, html)
    broken = None
    if not result.chain.ok:
        broken = (
            f"the audit log {path} is broken at line {result.chain.problem_line}: "
            f"{result.chain.problem}; the report was made anyway, with a warning"
        )
    if as_json:
        data = {"ok": broken is None, "report": result.to_json()}
        if html is not None:
            data["html"] = str(html)
        if broken is not None:
            data["error"] = {"kind": "refused", "message": broken, "exit_code": 1}
        print_json(data)
        if broken is not None:
            err_console.print(
                f"[bold red]refused:[/] {plain(broken)}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(1)
        return
    _human(result, html)
    if broken is not None:
        raise Refused(broken)
