"""`defiagent state status|rekey`: the state dir's encryption at rest (docs/privacy.md)."""

from __future__ import annotations

from pathlib import Path

import typer

from defiagent.cli.output import console, emit, plain
from defiagent.errors import ConfigError

app = typer.Typer(help="The state dir's encryption at rest.", no_args_is_help=True)

CONFIG = typer.Option(None, "--config", "-c", help="agent.toml ([state.encryption], state_dir).")
STATE_DIR = typer.Option(
    None, "--state-dir", help="The agent's state dir (default: from --config, else .defiagent)."
)
JSON = typer.Option(False, "--json", help="Machine-readable output on stdout.")


@app.command("status")
def status(
    config: Path | None = CONFIG, state_dir: Path | None = STATE_DIR, as_json: bool = JSON
) -> None:
    """Is the state dir encrypted, under which key, and does that key unwrap now."""
    from defiagent.cli.kill_switch import _state_dir
    from defiagent.state_crypto.active import present_files, unlock
    from defiagent.state_crypto.keyfile import read_key_file

    directory = _state_dir(config, state_dir)
    kf = read_key_file(directory) if directory.is_dir() else None
    data: dict[str, object] = {
        "ok": True,
        "state_dir": str(directory),
        "encrypted": kf is not None,
        "files": present_files(directory) if directory.is_dir() else [],
    }
    if kf is not None:
        cipher = unlock(directory, allow_pending=True)  # a wrong or missing key refuses here
        data |= {
            "backend": kf.backend,
            "key": cipher.source,
            "data_key": kf.current,
            "data_keys": [k.id for k in kf.keys],
            "pending_rekey": kf.pending,
        }

    def human() -> None:
        if kf is None:
            console.print(f"{plain(directory)}: [yellow]not encrypted[/]", highlight=False)
            return
        pending = " [bold red](an interrupted rekey: run it again)[/]" if kf.pending else ""
        console.print(
            f"{plain(directory)}: [green]encrypted[/] under {plain(data['key'])}, data key "
            f"{kf.current} ({len(kf.keys)} held), unwraps now{pending}",
            highlight=False,
        )

    emit(data, as_json=as_json, human=human)


@app.command("rekey")
def rekey(
    config: Path = typer.Option(
        ..., "--config", "-c", help="agent.toml: [state.encryption] names the key to move to."
    ),
    as_json: bool = JSON,
) -> None:
    """Re-encrypt the state dir under a new data key wrapped by the configured backend
    (also encrypts a plaintext state dir). Stop the agent first; a crash midway leaves a
    state the agent refuses and this command finishes."""
    from defiagent.agent.state_dir import ensure_private_state_dir
    from defiagent.config import load_config
    from defiagent.state_crypto.rekey import rekey_state_dir

    cfg = load_config(config)
    if not cfg.state_dir.is_dir():
        raise ConfigError(f"the state dir {cfg.state_dir} does not exist: nothing to rekey")
    ensure_private_state_dir(cfg.state_dir)
    result = rekey_state_dir(cfg.state_dir, cfg.state.encryption)

    def human() -> None:
        files = ", ".join(f"{k} ({v})" for k, v in result.rewritten.items()) or "no files yet"
        console.print(
            f"[green]rekeyed[/]: {plain(result.state_dir)} from {plain(result.was)} to "
            f"{plain(result.now)}, data key {result.data_key}; re-encrypted {plain(files)}",
            highlight=False,
        )
        if result.kept_keys:
            console.print(
                f"kept data keys {', '.join(result.kept_keys)}: audit records sealed with them "
                "are never rewritten (the hash chain covers them)",
                highlight=False,
            )

    emit({"ok": True, **result.model_dump()}, as_json=as_json, human=human)
