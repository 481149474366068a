"""`defiagent audit-log verify|repair FILE`: walk the hash chain and check it against the
authenticated head; remove a torn last line (and only that)."""

from __future__ import annotations

from pathlib import Path

import typer

from defiagent.cli.output import console, emit, err_console, plain, print_json
from defiagent.errors import ConfigError, Refused
from defiagent.monitoring.audit_log import HEAD_KEY_ENV, repair_audit_log, verify_audit_log

app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)

FILE = typer.Argument(..., help="The audit log (state_dir/audit.jsonl).")
JSON = typer.Option(False, "--json", help="Machine-readable output on stdout.")
HEAD_KEY = typer.Option(
    None,
    "--head-key",
    metavar="REF",
    help=(
        "Where the head's key is: env:NAME, keyring:service/name or file:PATH, never the key "
        f"itself (default: ${HEAD_KEY_ENV}, else the key file made for the log's state dir)."
    ),
)


def _refuse(message: str, as_json: bool, document: dict | None = None) -> None:
    """Exit 1 with one sentence; with --json, one document holding the error too."""
    if not as_json:
        raise Refused(message)
    error = {"kind": "refused", "message": message, "exit_code": 1}
    print_json((document or {"ok": False}) | {"error": error})
    err_console.print(f"[bold red]refused:[/] {plain(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


@app.command("verify")
def verify(file: Path = FILE, as_json: bool = JSON, head_key: str | None = HEAD_KEY) -> None:
    """Check every record's hash and link, and that the log ends where its authenticated
    head says; exit 1 naming the first edited, missing, inserted or reordered line."""
    if not file.is_file():
        raise ConfigError(f"{file} is not a file")
    report = verify_audit_log(file, head_key=head_key)
    if report.ok:
        emit(
            report.model_dump(),
            as_json=as_json,
            human=lambda: console.print(
                f"[green]ok[/]: {report.records} records, chain intact, head {report.head}"
                + (" (authenticated)" if report.head_authenticated else "")
                + (
                    f", from a checkpoint of {report.pruned} pruned records"
                    if report.pruned
                    else ""
                )
            ),
        )
        return
    problem = report.problem
    assert problem is not None  # a log that does not verify names its problem
    where = f"is broken at line {problem.line}" if problem.line else "does not verify"
    hint = f"; `defiagent audit-log repair {file}` removes it" if report.repairable else ""
    message = (
        f"{file} {where}: {problem.reason} ({report.records} records before it are intact){hint}"
    )
    _refuse(message, as_json, report.model_dump())


@app.command("prune")
def prune(
    file: Path = FILE,
    older_than_days: int = typer.Option(
        ..., "--older-than-days", min=1, help="Drop records older than this many days."
    ),
    as_json: bool = JSON,
    head_key: str | None = HEAD_KEY,
) -> None:
    """Drop the records older than the limit ([retention] does this at each start); the
    log then starts at a checkpoint authenticated with the head key and still verifies.
    The newest record is always kept; the prune is recorded in the log."""
    from defiagent.privacy.retention import prune_audit_log

    if not file.is_file():
        raise ConfigError(f"{file} is not a file")
    result = prune_audit_log(file, max_age_days=older_than_days, head_key=head_key)
    emit(
        {"ok": True, **result.model_dump()},
        as_json=as_json,
        human=lambda: console.print(
            f"[green]pruned[/]: {result.pruned} records older than {result.before} "
            f"({result.pruned_total} in all behind the checkpoint), {result.kept} kept",
            highlight=False,
        ),
    )


@app.command("repair")
def repair(file: Path = FILE, as_json: bool = JSON, head_key: str | None = HEAD_KEY) -> None:
    """Remove a torn last line (a write cut off by a crash), record its size and SHA-256 as
    an `audit-repair` record, authenticate the head again. Refuses anything else: a deleted
    or edited record is not repairable."""
    if not file.is_file():
        raise ConfigError(f"{file} is not a file")
    try:
        result = repair_audit_log(file, head_key=head_key)
    except Refused as exc:
        _refuse(str(exc), as_json)
        return

    def human() -> None:
        if not result.repaired:
            console.print(
                f"[green]ok[/]: nothing to repair, {plain(file)} verifies", highlight=False
            )
            return
        console.print(
            f"[green]repaired[/]: removed a torn line {result.line} ({result.removed_bytes} "
            f"bytes, sha256 {result.removed_sha256}), recorded as audit-repair record "
            f"{result.record}"
        )

    emit({"ok": True, **result.model_dump()}, as_json=as_json, human=human)
