"""The typer app, the global options and the error boundary that maps errors to exit codes."""

from __future__ import annotations

import os
import sys

import typer

from defiagent import __version__
from defiagent.cli import allowlist as allowlist_cmd
from defiagent.cli import audit_log, demo, doctor, keystore, kill_switch, rules, signer
from defiagent.cli import run as run_cmd
from defiagent.cli import vet as vet_cmd
from defiagent.cli.output import err_console, print_json
from defiagent.errors import DefiagentError

app = typer.Typer(
    name="defiagent",
    help="A DeFi trading agent built around security.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"defiagent {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
) -> None:
    """defiagent: allowlisted contracts, fork simulation before every send, guarded strategies."""
    if debug:
        os.environ["DEFIAGENT_DEBUG"] = "1"


app.command("doctor")(doctor.doctor)
app.command("demo")(demo.demo)
app.add_typer(keystore.app, name="keystore")
app.add_typer(signer.app, name="signer")
app.command("run")(run_cmd.run)
app.command("dry-run")(run_cmd.dry_run)
app.add_typer(kill_switch.app, name="kill-switch")
app.add_typer(audit_log.app, name="audit-log")
app.add_typer(rules.app, name="rules")
app.add_typer(allowlist_cmd.app, name="allowlist")
app.command("vet")(vet_cmd.vet)


def _debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("DEFIAGENT_DEBUG") == "1"


def _report(kind: str, message: str, code: int, as_json: bool) -> int:
    err_console.print(f"[bold red]{kind}:[/] {message}", highlight=False, soft_wrap=True)
    if as_json:
        print_json({"ok": False, "error": {"kind": kind, "message": message, "exit_code": code}})
    return code


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = _debug_requested(argv)
    as_json = "--json" in argv
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="defiagent", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        return _report("aborted", "Interrupted.", 1, as_json)
    except typer.TyperException as exc:  # usage errors: bad option, missing argument
        if debug:
            raise
        return _report("usage", exc.format_message(), 2, as_json)
    except DefiagentError as exc:
        if debug:
            raise
        return _report(exc.kind, str(exc), exc.exit_code, as_json)
    except KeyboardInterrupt:
        return _report("aborted", "Interrupted.", 1, as_json)
    except Exception as exc:
        if debug:
            raise
        message = f"unexpected {type(exc).__name__}: {exc} (rerun with --debug for the traceback)"
        return _report("internal", message, 3, as_json)


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
