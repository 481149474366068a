"""`defiagent kill-switch on|off|status`: stop all signing, persistently, from any terminal."""

from __future__ import annotations

import getpass
import os
from pathlib import Path

import typer

from defiagent.agent.runtime import AUDIT_FILE
from defiagent.cli.output import console, emit, plain
from defiagent.config import DEFAULT_STATE_DIR, load_config
from defiagent.errors import Refused
from defiagent.monitoring.audit_log import AuditLog
from defiagent.monitoring.kill_switch import KillSwitch, KillSwitchStatus
from defiagent.operator.gates import require_operator_code

app = typer.Typer(help="The kill switch: when on, nothing is signed or sent.", no_args_is_help=True)

CONFIG = typer.Option(None, "--config", "-c", help="agent.toml (its state_dir is used).")
STATE_DIR = typer.Option(
    None, "--state-dir", help="The agent's state dir (default: from --config, else .defiagent)."
)
JSON = typer.Option(False, "--json", help="Machine-readable output on stdout.")


def _state_dir(config: Path | None, state_dir: Path | None) -> Path:
    from defiagent.agent.state_dir import existing_state_dir

    if state_dir is not None:
        return existing_state_dir(state_dir)
    if config is not None:
        return existing_state_dir(load_config(config).state_dir)
    env = os.environ.get("DEFIAGENT_STATE_DIR")
    return existing_state_dir(Path(env) if env else DEFAULT_STATE_DIR)


def _show(status: KillSwitchStatus, as_json: bool) -> None:
    def human() -> None:
        word = "[bold red]ON[/]" if status.on else "[green]off[/]"
        extra = f" ({plain(status.reason)})" if status.reason else ""
        when = f", since {status.changed_at}" if status.changed_at else ""
        console.print(
            f"kill switch {word}{extra}{when}  [dim]{plain(status.path)}[/]", highlight=False
        )

    emit({"ok": True, **status.model_dump()}, as_json=as_json, human=human)


def _who() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:
        return "cli"


def _switch(
    on: bool, reason: str, config, state_dir, as_json: bool, otp_stdin: bool = False
) -> None:
    directory = _state_dir(config, state_dir)
    if on:
        try:
            audit = AuditLog(directory / AUDIT_FILE)
        except Refused as exc:
            # Stopping must stay possible on a damaged log: set the switch, then say so.
            KillSwitch(directory).set(True, reason=reason, changed_by=_who())
            raise Refused(
                f"the kill switch is ON, but it could not be recorded: {exc.message}",
                remedy=exc.remedy,
            ) from None
        audit.close()
    with AuditLog(directory / AUDIT_FILE) as audit:
        if not on:  # turning it on never needs the operator: stopping must stay easy
            require_operator_code(
                directory, "turning the kill switch off", audit=audit, otp_stdin=otp_stdin
            )
        status = KillSwitch(directory, audit=audit).set(on, reason=reason, changed_by=_who())
    _show(status, as_json)


@app.command("on")
def on(
    reason: str = typer.Option("", "--reason", help="Why (kept in the state file and audit log)."),
    config: Path | None = CONFIG,
    state_dir: Path | None = STATE_DIR,
    as_json: bool = JSON,
) -> None:
    """Turn the kill switch on: a running agent signs nothing more, from its next check."""
    _switch(True, reason, config, state_dir, as_json)


@app.command("off")
def off(
    reason: str = typer.Option("", "--reason", help="Why (kept in the state file and audit log)."),
    config: Path | None = CONFIG,
    state_dir: Path | None = STATE_DIR,
    otp_stdin: bool = typer.Option(
        False, "--otp-stdin", help="Read the operator's code as one line of stdin."
    ),
    as_json: bool = JSON,
) -> None:
    """Turn the kill switch off (needs the operator's code when one is enrolled)."""
    _switch(False, reason, config, state_dir, as_json, otp_stdin)


@app.command("status")
def status(
    config: Path | None = CONFIG,
    state_dir: Path | None = STATE_DIR,
    as_json: bool = JSON,
) -> None:
    """Show whether the kill switch is on, why, and since when."""
    _show(KillSwitch(_state_dir(config, state_dir)).status(), as_json)
