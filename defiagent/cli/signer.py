"""`defiagent signer`: which account the configured signer signs for, and whether it works."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from defiagent.cli.output import console, emit
from defiagent.errors import ConfigError
from defiagent.signing.config import build_signer, load_signer_config

app = typer.Typer(help="The configured signer (Ledger, AWS KMS or keystore).", no_args_is_help=True)

CONFIG = typer.Option(..., "--config", "-c", help="agent.toml; only its signer table is read.")
JSON = typer.Option(False, "--json", help="Machine-readable output on stdout.")


def _close(signer: object) -> None:
    close = getattr(signer, "close", None)
    if callable(close):
        close()


@app.command("address")
def address(
    config: Path = CONFIG,
    confirm: bool = typer.Option(
        False, "--confirm", help="Ledger only: show the address on the device and wait for OK."
    ),
    as_json: bool = JSON,
) -> None:
    """Print the signer's address (with a Ledger, optionally confirmed on the device)."""
    cfg = load_signer_config(config)
    signer = build_signer(cfg, base_dir=config.parent)
    try:
        if confirm:
            if cfg.backend != "ledger":
                raise ConfigError("--confirm needs a Ledger signer; this one is " + cfg.backend)
            from defiagent.signing.ledger import LedgerSigner

            assert isinstance(signer, LedgerSigner)  # what a ledger config builds
            found = signer.confirm_address()
        else:
            found = signer.address
    finally:
        _close(signer)
    emit(
        {"ok": True, "backend": cfg.backend, "address": found, "confirmed_on_device": confirm},
        as_json=as_json,
        human=lambda: console.print(found),
    )


@app.command("check")
def check(config: Path = CONFIG, as_json: bool = JSON) -> None:
    """Sign a probe message and verify it recovers to the signer (nothing is broadcast)."""
    cfg = load_signer_config(config)
    signer = build_signer(cfg, base_dir=config.parent)
    probe = f"defiagent signer check {int(time.time())}".encode()
    try:
        found = signer.address
        signer.sign_message(probe)  # verified inside; a mismatch raises and exits 1
    finally:
        _close(signer)
    emit(
        {"ok": True, "backend": cfg.backend, "address": found, "probe": probe.decode()},
        as_json=as_json,
        human=lambda: console.print(f"{cfg.backend} signer {found}: signature verified"),
    )
