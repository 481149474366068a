"""`defiagent backtest`: replay recorded history through the agent's own pipeline, judge the
result with the overfitting gates, and (with --certify) sign a certificate `run` requires.

    defiagent backtest -c agent.toml --data DIR [--strategy NAME] [--from BLOCK] [--to BLOCK]
        [--warmup N] [--sweep grid.toml [--scheduler tcp://host:port] [--workers N]]
        [--certify --key KEYSTORE [--password-env NAME] [--otp-stdin]]
        [--no-gates] [--json] [--html FILE]

Exit 0 when the backtest ran and every gate passed, 1 when a gate failed (each named), 2
for bad input, 3 when the strategy or the RPC-free replay cannot run. docs/backtest.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from defiagent.cli.output import console, emit, err_console, plain
from defiagent.errors import ConfigError, Refused


def _range(history: Any, from_block: int | None, to_block: int | None) -> tuple[int, int]:
    """Block numbers (inclusive) -> tick indexes [start, end)."""
    start = 0 if from_block is None else history.index_of_block(from_block)
    end = len(history) if to_block is None else history.index_of_block(to_block + 1)
    if start >= end:
        raise ConfigError(
            f"no recorded tick lies in blocks {from_block or history.blocks[0]}-"
            f"{to_block or history.blocks[-1]} (the history holds blocks {history.blocks[0]}-"
            f"{history.blocks[-1]})"
        )
    return start, end


def backtest(
    config: Path = typer.Option(..., "--config", "-c", help="agent.toml (strategies, rules)."),
    data: Path = typer.Option(..., "--data", help="A history folder (market record/import)."),
    strategy: str | None = typer.Option(
        None, "--strategy", help="A strategy name from the config (default: the first)."
    ),
    from_block: int | None = typer.Option(None, "--from", help="First block replayed."),
    to_block: int | None = typer.Option(None, "--to", help="Last block replayed (inclusive)."),
    warmup: int = typer.Option(
        0, "--warmup", min=0, help="Ticks before --from the strategy sees, untraded."
    ),
    sweep: Path | None = typer.Option(
        None, "--sweep", help="A grid.toml: backtest every point on Dask (docs/backtest.md)."
    ),
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="A Dask scheduler (tcp://host:port); default a LocalCluster."
    ),
    workers: int = typer.Option(2, "--workers", min=1, help="LocalCluster worker processes."),
    no_gates: bool = typer.Option(False, "--no-gates", help="Skip the overfitting gates."),
    certify: bool = typer.Option(
        False, "--certify", help="Sign a backtest certificate with an operator key (--key)."
    ),
    key: Path | None = typer.Option(None, "--key", help="The operator's V3 keystore file."),
    password_env: str | None = typer.Option(
        None, "--password-env", help="Read the keystore password from this environment variable."
    ),
    otp_stdin: bool = typer.Option(
        False, "--otp-stdin", help="Read the operator's code as one line of stdin."
    ),
    html: Path | None = typer.Option(None, "--html", help="Also write a self-contained page."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output on stdout."),
) -> None:
    """Replay recorded market history through the strategy, planner, guard and risk rules."""
    from defiagent.backtest.engine import pick_strategy, run_backtest
    from defiagent.config import load_config
    from defiagent.market.history import MarketHistory

    if certify and key is None:
        raise ConfigError("--certify needs --key, the operator's keystore")
    if key is not None and not certify:
        raise ConfigError("--key is only used with --certify")
    if certify and no_gates:
        raise ConfigError("--certify needs the gates: drop --no-gates")
    if scheduler and sweep is None:
        raise ConfigError("--scheduler is only used with --sweep")
    cfg = load_config(config)
    history = MarketHistory.load(data)
    sc = pick_strategy(cfg, strategy)
    start, end = _range(history, from_block, to_block)
    if certify:  # everything that can fail cheaply, before minutes of replay
        from defiagent.signing.keystore import read_keystore_address
        from defiagent.strategy.pins import check_pin_signer

        assert key is not None
        check_pin_signer(cfg, read_keystore_address(key))
    from defiagent.agent.allowlist_source import load_allowlist

    allowlist = load_allowlist(cfg.allowlist_dir, cfg.chain_id)
    say = (lambda m: None) if as_json else (lambda m: err_console.print(f"[dim]{plain(m)}[/]"))
    say(f"replaying {history.describe()}")

    sweep_info: dict[str, Any] | None = None
    trials: list[Any] = []
    grid: dict[str, list[Any]] | None = None
    tried = 0
    if sweep is not None:
        from defiagent.backtest.sweep import BacktestTask, load_grid, run_sweep

        spec = load_grid(sweep)
        if spec.strategy is not None and spec.strategy != sc.name:
            raise ConfigError(
                f"the sweep grid {sweep} is for strategy {spec.strategy}, not {sc.name}; "
                "pass --strategy"
            )
        task = BacktestTask(cfg, data.resolve(), sc.name, start, end, warmup, allowlist=allowlist)
        report = run_sweep(
            spec.points(), task, grid=spec.params, scheduler=scheduler, workers=workers
        )
        best = report.best
        grid, trials, tried = dict(spec.params), report.trials, report.tried
        sweep_info = {
            "scheduler": report.scheduler,
            "workers": report.workers,
            "seconds": report.seconds,
            "tried": report.tried,
            "failed": [f.model_dump(mode="json") for f in report.failures],
            "chosen": {k: best.params.get(k) for k in spec.params},
            "points": [
                {"params": {k: r.params.get(k) for k in spec.params}, "metrics": r.metrics}
                for r in report.results
            ],
        }
        say(f"swept {report.tried} points on {report.scheduler} in {report.seconds:.1f} s")
        # The chosen point, replayed with the config's own params merged (what would run).
        result = best
    else:
        result = run_backtest(
            cfg,
            history,
            strategy=sc.name,
            start=start,
            end=end,
            warmup=warmup,
            allowlist=allowlist,
        )

    from defiagent.backtest.gates.trial_log import record_tried

    # Every configuration ever run on this data counts in the deflated Sharpe ratio, not
    # only this run's: many small sweeps must not each be deflated as if they were alone.
    tried = record_tried(
        cfg.backtest.certificates_dir,
        sc.name,
        history.content_hash,
        [t.params for t in trials] or [result.params],
        tried,
    )
    verdicts: list[Any] = []
    gates_ran = False
    if not no_gates:
        verdicts, gates_ran = _gates(
            cfg, history, sc, result, start, end, trials, grid, tried, allowlist
        )
    failed = [v for v in verdicts if not getattr(v, "passed", False)]

    certificate = None
    cert_path = None
    if certify:
        if result.params != sc.params:
            raise Refused(
                f"the sweep chose other params than {sc.name}'s ({_diff(sc.params, result.params)}); "
                "put them in agent.toml, pin the strategy again, and certify with the same sweep"
            )
        certificate, cert_path = _certify(
            cfg, sc, result, history, verdicts, key, password_env, otp_stdin
        )

    symbols = {a: t.symbol for a, t in history.tokens.items()}
    if html is not None:
        from defiagent.backtest.html import write_html

        write_html(result, html, symbols=symbols, certificate=certificate)
    data_out: dict[str, Any] = {
        "ok": not failed,
        "strategy": sc.name,
        "data": {"path": str(data), "sha256": history.content_hash, "source": history.meta.source},
        "result": result.model_dump(mode="json", exclude={"decisions"}),
        "gates": [v.model_dump(mode="json") for v in verdicts],
        "gates_ran": gates_ran,
        "certificate": certificate.model_dump(mode="json") if certificate else None,
        "certificate_file": str(cert_path) if cert_path else None,
        "html": str(html) if html else None,
    }
    if sweep_info is not None:
        data_out["sweep"] = sweep_info
    emit(
        data_out,
        as_json=as_json,
        human=lambda: _human(
            result, verdicts, gates_ran, symbols, certificate, cert_path, html, sweep_info
        ),
    )
    if failed:
        if not as_json:
            names = ", ".join(getattr(v, "gate", "?") for v in failed)
            err_console.print(
                f"[bold red]refused:[/] the backtest of {plain(sc.name)} failed the "
                f"gate{'s' if len(failed) > 1 else ''} {plain(names)}",
                highlight=False,
            )
        raise typer.Exit(1)


def _diff(a: dict[str, Any], b: dict[str, Any]) -> str:
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return ", ".join(f"{k}={b.get(k)!r}" for k in keys)


def _gates(cfg, history, sc, result, start, end, trials, grid, tried, allowlist):
    """The overfitting gates' verdicts, and whether they could run at all."""
    try:
        from defiagent.backtest.gates import run_gates
        from defiagent.backtest.gates.replay import replay_hooks
    except ImportError:  # pragma: no cover - the gates ship with the package
        return [], False
    evaluate, fit = replay_hooks(cfg, history, strategy=sc.name, allowlist=allowlist)
    verdicts = run_gates(
        result,
        start=start,
        end=end,
        config=getattr(cfg.backtest, "gates", None),
        trials=trials,
        grid=grid,
        evaluate=evaluate,
        fit=fit,
        base_params=sc.params,
        tried=tried,
    )
    return verdicts, True


def _certify(cfg, sc, result, history, verdicts, key, password_env, otp_stdin):
    from defiagent.backtest.certificate import issue_certificate, write_certificate
    from defiagent.cli.strategy import _keystore_signer
    from defiagent.operator.gates import require_operator_code, state_audit

    signer = _keystore_signer(key, password_env)
    with state_audit(cfg.state_dir) as audit:
        needed_code = require_operator_code(
            cfg.state_dir, "backtest-certify", audit=audit, otp_stdin=otp_stdin
        )
        cert = issue_certificate(cfg, sc, result, history, verdicts, signer)
        path = write_certificate(cfg, cert)
        audit.record(
            "backtest-certificate",
            {
                "strategy": sc.name,
                "file": str(path),
                "passed": cert.passed,
                "code_sha256": cert.code_sha256,
                "params_sha256": cert.params_sha256,
                "data_sha256": cert.data.sha256,
                "signer": cert.signer,
                "operator_code": needed_code,
            },
        )
    return cert, path


def _n(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _human(result, verdicts, gates_ran, symbols, certificate, cert_path, html, sweep_info) -> None:
    m = result.metrics
    console.print(
        f"[bold]Backtest[/] {plain(result.strategy)}  blocks {result.start_block}-"
        f"{result.end_block}, {m.n_ticks} ticks"
        + (f" after {result.warmup} warm-up" if result.warmup else "")
        + f"  [dim]data {result.data_hash[:16]}…[/]",
        highlight=False,
    )
    if sweep_info:
        console.print(
            f"sweep: {sweep_info['tried']} points on {plain(sweep_info['scheduler'])} in "
            f"{sweep_info['seconds']:.1f} s; chose {plain(sweep_info['chosen'])}",
            highlight=False,
        )
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="dim")
    table.add_column(justify="right")
    start_eq = result.equity[0] if result.equity else None
    end_eq = result.equity[-1] if result.equity else None
    for label, value in (
        ("equity start → end", f"{_n(start_eq)} → {_n(end_eq)}"),
        ("total return", f"{m.total_return * 100:+.2f}%"),
        ("Sharpe / Sortino (per tick)", f"{m.sharpe:.4f} / {m.sortino:.4f}"),
        ("max drawdown", f"{m.max_drawdown * 100:.2f}%"),
        ("trades (refused)", f"{m.n_trades} ({m.n_refused})"),
        ("win rate", f"{m.win_rate * 100:.0f}%"),
        ("turnover", f"{m.turnover:.2f}x"),
        ("exposure", f"{m.exposure * 100:.0f}%"),
        ("gas paid", _n(m.gas_cost, 4)),
    ):
        table.add_row(label, value)
    console.print(table)
    if result.trades:
        shown = result.trades[-15:]
        trades = Table(
            title=f"Trades ({len(result.trades)}{', the last 15' if len(result.trades) > 15 else ''})",
            title_justify="left",
        )
        for col in ("block", "in → out", "value in", "value out", "realized PnL"):
            trades.add_column(col, justify="right" if col != "in → out" else "left")
        for t in shown:
            trades.add_row(
                str(t.block),
                Text(
                    f"{symbols.get(t.token_in, t.token_in[:10])} → "
                    f"{symbols.get(t.token_out, t.token_out[:10])}"
                    + (f" ({t.exit_rule})" if t.exit_rule else "")
                ),
                _n(t.value_in),
                _n(t.value_out),
                _n(t.realized_pnl),
            )
        console.print(trades)
    if verdicts:
        gates = Table(title="Overfitting gates", title_justify="left")
        gates.add_column("gate")
        gates.add_column("verdict")
        gates.add_column("why", overflow="fold")
        for v in verdicts:
            ok = getattr(v, "passed", False)
            gates.add_row(
                Text(getattr(v, "gate", "?")),
                Text("pass" if ok else "FAIL", style="green" if ok else "bold red"),
                Text(getattr(v, "sentence", "")),
            )
        console.print(gates)
    elif not gates_ran:
        console.print("[yellow]the overfitting gates were not run[/]")
    if certificate is not None:
        state = "[green]passed[/]" if certificate.passed else "[bold red]FAILED[/]"
        console.print(
            f"certificate {state}, signed by {certificate.signer}: {plain(cert_path)}",
            highlight=False,
        )
    if html is not None:
        console.print(f"page: {plain(html)}", highlight=False)
