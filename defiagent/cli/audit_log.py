"""`defiagent audit-log verify FILE`: walk the hash chain, name the first bad line."""

from __future__ import annotations

from pathlib import Path

import typer

from defiagent.cli.output import console, emit, err_console, print_json
from defiagent.errors import ConfigError, Refused
from defiagent.monitoring.audit_log import verify_audit_log

app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)


@app.command("verify")
def verify(
    file: Path = typer.Argument(..., help="The audit log (state_dir/audit.jsonl)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output on stdout."),
) -> None:
    """Check every record's hash and link; exit 1 naming the first edited, missing,
    inserted or reordered line."""
    if not file.is_file():
        raise ConfigError(f"{file} is not a file")
    report = verify_audit_log(file)
    if report.ok:
        emit(
            report.model_dump(),
            as_json=as_json,
            human=lambda: console.print(
                f"[green]ok[/]: {report.records} records, chain intact, head {report.head}"
            ),
        )
        return
    problem = report.problem
    message = (
        f"{file} is broken at line {problem.line}: {problem.reason}"
        f" ({report.records} records before it are intact)"
    )
    if not as_json:
        raise Refused(message)
    # One JSON document: the report and the error together, then exit 1.
    print_json(
        report.model_dump() | {"error": {"kind": "refused", "message": message, "exit_code": 1}}
    )
    err_console.print(f"[bold red]refused:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)
