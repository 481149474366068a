"""`defiagent operator enroll|status|approve-limits|unenroll`: the operator's second factor.

Once an operator is enrolled, critical changes need a current TOTP code: turning the kill
switch off, approving looser limits, the approval that activates an allowlist entry. The
code is never an argument: a hidden prompt on a terminal, else --otp-stdin, else
DEFIAGENT_OTP_CODE.
"""

from __future__ import annotations

import getpass
import os
import socket
import sys
from pathlib import Path

import typer

from defiagent.cli.output import console, emit, err_console, plain
from defiagent.config import DEFAULT_STATE_DIR, load_config
from defiagent.errors import Refused

app = typer.Typer(
    help="The operator's second factor (TOTP) for critical changes.", no_args_is_help=True
)

CONFIG = typer.Option(None, "--config", "-c", help="agent.toml (its state_dir is used).")
STATE_DIR = typer.Option(
    None,
    "--state-dir",
    help="The agent's state dir (default: from --config, else $DEFIAGENT_STATE_DIR, else .defiagent).",
)
OTP_STDIN = typer.Option(
    False,
    "--otp-stdin",
    help="Read the operator's code as one line of stdin (when stdin is not a terminal).",
)
JSON = typer.Option(False, "--json", help="Machine-readable output on stdout.")


def resolve_state_dir(config: Path | None, state_dir: Path | None) -> Path:
    from defiagent.agent.state_dir import existing_state_dir

    if state_dir is not None:
        return existing_state_dir(state_dir)
    if config is not None:
        return existing_state_dir(load_config(config).state_dir)
    env = os.environ.get("DEFIAGENT_STATE_DIR")
    return existing_state_dir(Path(env) if env else DEFAULT_STATE_DIR)


def _default_name() -> str:
    try:
        user = getpass.getuser()
    except Exception:
        user = "operator"
    return f"{user}@{socket.gethostname()}"


def _show_provisioning(uri: str, as_json: bool) -> None:
    """The URI and a QR code for the authenticator app: stdout, or stderr under --json."""
    import segno

    out = sys.stderr if as_json else sys.stdout
    target = err_console if as_json else console
    target.print("Scan this QR code with your authenticator app, or enter the URI by hand:")
    target.print(uri, markup=False, highlight=False, soft_wrap=True)
    out.flush()
    segno.make(uri, error="m").terminal(out=out, compact=True)
    out.flush()


@app.command("enroll")
def enroll(
    name: str = typer.Option(None, "--name", help="Account name in the app (default user@host)."),
    issuer: str = typer.Option("defiagent", "--issuer", help="Issuer shown in the app."),
    config: Path | None = typer.Option(
        None,
        "--config",
        "-c",
        help="agent.toml: its state_dir is used and its limits are approved with the same code.",
    ),
    state_dir: Path | None = STATE_DIR,
    otp_stdin: bool = OTP_STDIN,
    as_json: bool = JSON,
) -> None:
    """Enrol the operator: show a new secret as a URI and QR code, confirm it with a first code.

    Re-enrolling needs a current code of the enrolment it replaces.
    """
    from defiagent.operator import second_factor
    from defiagent.operator.codes import read_code
    from defiagent.operator.enrolment import new_enrolment
    from defiagent.operator.files import state_lock
    from defiagent.operator.gates import state_audit
    from defiagent.operator.limits import approve_limits, reseal
    from defiagent.operator.second_factor import (
        AUDIT_KIND,
        SecondFactor,
        matching_counters,
        normalize,
    )

    cfg = load_config(config) if config is not None else None
    directory = resolve_state_dir(config, state_dir)
    with state_audit(directory) as audit:
        factor = SecondFactor(directory, audit=audit)
        old = None
        if factor.required:
            code = read_code(otp_stdin=otp_stdin, label="Current operator code")
            factor.verify(code, "re-enrolling the operator")
            old = factor.store.load()
        enrolment = new_enrolment(name or _default_name(), issuer)
        _show_provisioning(enrolment.provisioning_uri(), as_json)
        code = read_code(otp_stdin=otp_stdin, label="Code shown by the app, to confirm")
        matches = matching_counters(enrolment, normalize(code), second_factor.now())
        if not matches:
            audit.record(AUDIT_KIND, {"action": "enrolling the operator", "outcome": "failed"})
            why = "no confirmation code was given" if not code else "the code does not match"
            raise Refused(
                f"{why}: the new secret was not saved and nothing changed; "
                "run `defiagent operator enroll` again"
            )
        enrolment = enrolment.model_copy(update={"last_counter": max(matches)})
        with state_lock(directory):
            factor.store.save(enrolment)
            factor.limiter.clear()
        audit.record(
            AUDIT_KIND,
            {
                "action": "re-enrolling the operator" if old else "enrolling the operator",
                "outcome": "enrolled",
                "issuer": enrolment.issuer,
                "name": enrolment.name,
            },
        )
        limits = "not approved yet"
        if cfg is not None:
            approve_limits(cfg, directory, enrolment, audit)
            limits = "approved"
        elif old is not None and reseal(directory, old, enrolment):
            limits = "carried over"
    data = {
        "ok": True,
        "enrolled": True,
        "issuer": enrolment.issuer,
        "name": enrolment.name,
        "enrolled_at": enrolment.enrolled_at,
        "path": str(factor.store.path),
        "limits": limits,
    }

    def human() -> None:
        console.print(
            f"[green]operator enrolled[/] as {plain(enrolment.name)} ({plain(factor.store.path)})",
            highlight=False,
        )
        if limits == "not approved yet":
            console.print(
                "the agent will not start until you approve its limits: "
                "`defiagent operator approve-limits -c agent.toml`"
            )
        else:
            console.print(f"limits {limits}")

    emit(data, as_json=as_json, human=human)


@app.command("status")
def status(
    config: Path | None = CONFIG,
    state_dir: Path | None = STATE_DIR,
    as_json: bool = JSON,
) -> None:
    """Whether an operator is enrolled, whether limits are approved, any lockout."""
    from defiagent.errors import DefiagentError
    from defiagent.operator import second_factor
    from defiagent.operator.limits import LimitsStore
    from defiagent.operator.ratelimit import FailureLimiter, iso
    from defiagent.operator.second_factor import SecondFactor

    directory = resolve_state_dir(config, state_dir)
    factor = SecondFactor(directory)
    now = second_factor.now()
    data: dict = {"ok": True, "enrolled": factor.required, "path": str(factor.store.path)}
    problem = None
    if factor.required:
        try:
            enrolment = factor.store.load()
            limiter = FailureLimiter(directory)
            until = limiter.locked_until(now)
            data |= {
                "issuer": enrolment.issuer if enrolment else None,
                "name": enrolment.name if enrolment else None,
                "enrolled_at": enrolment.enrolled_at if enrolment else None,
                "failures_in_window": len(limiter.recent(now)),
                "locked_until": iso(until) if until else None,
                "limits_approved": bool(enrolment and LimitsStore(directory).load(enrolment)),
            }
        except DefiagentError as exc:
            problem = str(exc)
            data |= {"ok": False, "problem": problem}

    def human() -> None:
        if not data["enrolled"]:
            console.print(
                f"no operator enrolled in {plain(directory)}: no second factor is asked for",
                highlight=False,
            )
            return
        if problem:
            console.print(
                f"[bold red]operator enrolment unusable:[/] {plain(problem)}", highlight=False
            )
            return
        console.print(
            f"operator [green]enrolled[/] as {plain(data['name'])} ({plain(data['issuer'])}) "
            f"since {data['enrolled_at']}"
        )
        console.print(f"limits approved: {'yes' if data['limits_approved'] else 'no'}")
        if data["locked_until"]:
            console.print(f"[bold red]locked out[/] until {data['locked_until']}")
        elif data["failures_in_window"]:
            console.print(f"{data['failures_in_window']} recent failed attempt(s)")

    emit(data, as_json=as_json, human=human)
    if problem:
        raise typer.Exit(1)


@app.command("approve-limits")
def approve_limits_command(
    config: Path = typer.Option(..., "--config", "-c", help="agent.toml whose limits to approve."),
    state_dir: Path | None = STATE_DIR,
    otp_stdin: bool = OTP_STDIN,
    as_json: bool = JSON,
) -> None:
    """Approve the config's guard and risk limits as they are now (needs a code)."""
    from defiagent.operator.codes import read_code
    from defiagent.operator.gates import state_audit
    from defiagent.operator.limits import approve_limits
    from defiagent.operator.second_factor import SecondFactor

    cfg = load_config(config)
    directory = state_dir if state_dir is not None else cfg.state_dir
    with state_audit(directory) as audit:
        factor = SecondFactor(directory, audit=audit)
        if not factor.required:
            raise Refused(
                f"no operator is enrolled in {directory}, so there is nothing to approve with",
                remedy="enroll with `defiagent operator enroll -c agent.toml`",
            )
        factor.verify(read_code(otp_stdin=otp_stdin), "approving the limits")
        enrolment = factor.store.load()
        assert enrolment is not None  # verify() accepted a code: there is an enrolment
        accepted = approve_limits(cfg, directory, enrolment, audit)
    data = {"ok": True, "approved": True, "looser_than_before": [c.sentence() for c in accepted]}

    def human() -> None:
        for change in accepted:
            console.print(f"[yellow]accepted[/] {change.sentence()}")
        console.print(f"[green]limits approved[/] for {directory}")

    emit(data, as_json=as_json, human=human)


@app.command("unenroll")
def unenroll(
    config: Path | None = CONFIG,
    state_dir: Path | None = STATE_DIR,
    otp_stdin: bool = OTP_STDIN,
    as_json: bool = JSON,
) -> None:
    """Remove the operator's enrolment (needs a code): no second factor is asked for after."""
    from defiagent.operator.codes import read_code
    from defiagent.operator.gates import state_audit
    from defiagent.operator.limits import LimitsStore
    from defiagent.operator.second_factor import AUDIT_KIND, SecondFactor

    directory = resolve_state_dir(config, state_dir)
    with state_audit(directory) as audit:
        factor = SecondFactor(directory, audit=audit)
        if not factor.required:
            raise Refused(f"no operator is enrolled in {directory}")
        factor.verify(read_code(otp_stdin=otp_stdin), "unenrolling the operator")
        factor.store.delete()
        LimitsStore(directory).delete()
        factor.limiter.path.unlink(missing_ok=True)
        audit.record(AUDIT_KIND, {"action": "unenrolling the operator", "outcome": "unenrolled"})
    emit(
        {"ok": True, "enrolled": False},
        as_json=as_json,
        human=lambda: console.print(f"operator unenrolled from {directory}"),
    )
