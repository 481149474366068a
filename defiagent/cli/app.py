"""The typer app, the global options and the error boundary that maps errors to exit codes."""

from __future__ import annotations

import importlib
import os
import sys
import traceback

import typer

from defiagent import __version__
from defiagent.cli.output import err_console, plain, print_json
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
    debug: bool = typer.Option(
        False,
        "--debug",
        help="Show tracebacks for errors (before or after the command name); "
        "the exit code stays the same.",
    ),
) -> None:
    """defiagent: allowlisted contracts, fork simulation before every send, guarded strategies."""
    # --debug is taken out of argv by main() wherever it stands; the option is declared
    # here for --help.


# Command name -> (module, attribute, is a group). Modules are imported only when their
# command runs (or for --help): importing every command pulls in web3, the agent and the
# demo, about a second before anything happens.
COMMANDS: dict[str, tuple[str, str, bool]] = {
    "doctor": ("defiagent.cli.doctor", "doctor", False),
    "demo": ("defiagent.cli.demo", "demo", False),
    "run": ("defiagent.cli.run", "run", False),
    "dry-run": ("defiagent.cli.run", "dry_run", False),
    "vet": ("defiagent.cli.vet", "vet", False),
    "keystore": ("defiagent.cli.keystore", "app", True),
    "signer": ("defiagent.cli.signer", "app", True),
    "safe": ("defiagent.cli.safe", "app", True),
    "kill-switch": ("defiagent.cli.kill_switch", "app", True),
    "audit-log": ("defiagent.cli.audit_log", "app", True),
    "rules": ("defiagent.cli.rules", "app", True),
    "protocols": ("defiagent.cli.protocols", "app", True),
    "allowlist": ("defiagent.cli.allowlist", "app", True),
    "report": ("defiagent.cli.report", "report", False),
    "operator": ("defiagent.cli.operator", "app", True),
    "strategy": ("defiagent.cli.strategy", "app", True),
    "market": ("defiagent.cli.market", "app", True),
    "backtest": ("defiagent.cli.backtest", "backtest", False),
    "state": ("defiagent.cli.state", "app", True),
    "privacy": ("defiagent.cli.privacy", "app", True),
    "devnet": ("defiagent.cli.devnet", "app", True),
}
_GLOBAL_FLAGS = {"--debug", "--version", "--help"}
_registered: set[str] = set()


def register(names: list[str] | None = None) -> typer.Typer:
    """Add the named commands (all when None) to the app, importing their modules."""
    for name in COMMANDS if names is None else names:
        if name in _registered:
            continue
        module, attribute, is_group = COMMANDS[name]
        target = getattr(importlib.import_module(module), attribute)
        if is_group:
            app.add_typer(target, name=name)
        else:
            app.command(name)(target)
        _registered.add(name)
    return app


def _command_named_in(argv: list[str]) -> str | None:
    for token in argv:
        if token in _GLOBAL_FLAGS:
            continue
        return token if token in COMMANDS else None
    return None


def _take_debug(argv: list[str]) -> tuple[list[str], bool]:
    """argv without --debug, and whether it was given: --debug is global, accepted before or
    after the command name (`defiagent --debug run ...`, `defiagent run --debug ...`).
    Nothing after a `--` is touched."""
    end = argv.index("--") if "--" in argv else len(argv)
    head = [a for a in argv[:end] if a != "--debug"]
    found = len(head) != end
    return head + argv[end:], found or os.environ.get("DEFIAGENT_DEBUG") == "1"


def _report(kind: str, message: str, code: int, as_json: bool) -> int:
    # The message is text, never markup: "has no [signer] table" keeps its brackets.
    err_console.print(f"[bold red]{kind}:[/] {plain(message)}", highlight=False, soft_wrap=True)
    if as_json:
        print_json({"ok": False, "error": {"kind": kind, "message": message, "exit_code": code}})
    return code


def main(argv: list[str] | None = None) -> int:
    argv, debug = _take_debug(list(sys.argv[1:] if argv is None else argv))
    as_json = "--json" in argv
    wanted = _command_named_in(argv)
    register([wanted] if wanted else None)
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="defiagent", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        return _report("aborted", "Interrupted.", 1, as_json)
    except typer.TyperException as exc:  # usage errors: bad option, missing argument
        _traceback(debug)
        return _report("usage", exc.format_message(), 2, as_json)
    except DefiagentError as exc:
        _traceback(debug)
        return _report(exc.kind, str(exc), exc.exit_code, as_json)
    except KeyboardInterrupt:
        return _report("aborted", "Interrupted.", 1, as_json)
    except Exception as exc:
        _traceback(debug)
        message = f"unexpected {type(exc).__name__}: {exc} (rerun with --debug for the traceback)"
        return _report("internal", message, 3, as_json)


def _traceback(debug: bool) -> None:
    """With --debug, the traceback of the error being handled goes to stderr first; the
    sentence and the exit code that follow are the same as without it."""
    if debug:
        traceback.print_exc(file=sys.stderr)
        sys.stderr.flush()


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
