"""`defiagent privacy export|erase --subject ID`: a reviewer's or the operator's personal
data, all of it in one document, or erased (docs/privacy.md)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from defiagent.cli.output import console, emit, plain
from defiagent.errors import ConfigError, Refused

app = typer.Typer(help="Personal data kept about reviewers and the operator.", no_args_is_help=True)

SUBJECT = typer.Option(
    ..., "--subject", help="A reviewer's address or name, or the operator's enrolment name."
)
CONFIG = typer.Option(None, "--config", "-c", help="agent.toml (its allowlist_dir and state_dir).")
ALLOWLIST = typer.Option(None, "--allowlist", help="The allowlist root (reviewers.toml).")
STATE_DIR = typer.Option(None, "--state-dir", help="The agent's state dir.")
JSON = typer.Option(False, "--json", help="Machine-readable output on stdout.")


def _subjects(config: Path | None, allowlist: Path | None, state_dir: Path | None):
    from defiagent.privacy.subjects import Subjects

    if config is not None:
        from defiagent.config import load_config

        cfg = load_config(config)
        allowlist = allowlist or cfg.allowlist_dir
        state_dir = state_dir or cfg.state_dir
    if allowlist is None and state_dir is None:
        raise ConfigError("give --config, or --allowlist and/or --state-dir, to look in")
    for what, path in (("--allowlist", allowlist), ("--state-dir", state_dir)):
        if path is not None and not Path(path).is_dir():
            raise ConfigError(f"{what} {path} is not a folder")
    return Subjects(allowlist, state_dir)


@app.command("export")
def export(
    subject: str = SUBJECT,
    config: Path | None = CONFIG,
    allowlist: Path | None = ALLOWLIST,
    state_dir: Path | None = STATE_DIR,
    out: Path | None = typer.Option(None, "--out", help="Also write the document here (0600)."),
    as_json: bool = JSON,
) -> None:
    """Everything kept about one person: the personal fields, what stays to verify their
    signatures, the signatures themselves and the audit records that name them."""
    document = _subjects(config, allowlist, state_dir).export(subject)
    data = {"ok": True, **document.model_dump(mode="json")}
    if out is not None:
        from defiagent.operator.files import write_atomic

        write_atomic(out, json.dumps(data, indent=1), mode=0o600)

    def human() -> None:
        console.print_json(json.dumps(document.model_dump(mode="json")))

    emit(data, as_json=as_json, human=human)


@app.command("erase")
def erase(
    subject: str = SUBJECT,
    config: Path | None = CONFIG,
    allowlist: Path | None = ALLOWLIST,
    state_dir: Path | None = STATE_DIR,
    yes: bool = typer.Option(False, "--yes", help="Erase: nothing is erased without it."),
    as_json: bool = JSON,
) -> None:
    """Erase one person's personal fields (a reviewer's name and contact, the operator's
    enrolment name); their signatures and the audit log stay verifiable. Recorded in the
    audit log. Refuses a subject it does not know."""
    subjects = _subjects(config, allowlist, state_dir)
    if subjects.state_dir is None:
        raise ConfigError(
            "an erase is recorded in the agent's audit log: give -c agent.toml or --state-dir"
        )
    kind, _ = subjects.find(subject)
    if not yes:
        raise Refused(
            f"erasing the personal data of {kind} {subject!r} cannot be undone",
            remedy="run it again with --yes",
        )
    result = subjects.erase(subject)

    def human() -> None:
        console.print(
            f"[green]erased[/]: {', '.join(result.erased_fields)} of {kind} {plain(subject)} "
            f"from {plain(', '.join(result.files))}",
            highlight=False,
        )
        if result.reviewers_sha256:
            console.print(
                f"reviewers.toml changed (only the name left it): its sha256 is now "
                f"{result.reviewers_sha256}; update DEFIAGENT_REVIEWERS_SHA256 if you pin it",
                highlight=False,
            )

    emit({"ok": True, **result.model_dump()}, as_json=as_json, human=human)
