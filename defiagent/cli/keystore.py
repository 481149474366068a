"""`defiagent keystore`: create or import an encrypted key file (development and tests only).

Secrets never travel on argv: the private key comes from a hidden prompt or stdin, the
password from a prompt or from an environment variable named with --password-env.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from eth_account import Account

from defiagent.cli.output import console, emit
from defiagent.errors import ConfigError
from defiagent.signing.keystore import read_keystore_address, write_keystore
from defiagent.signing.passwords import password_from_env, prompt_secret

app = typer.Typer(
    help="Encrypted keystore files (Web3 Secret Storage V3, scrypt), for development only.",
    no_args_is_help=True,
)

OUT = typer.Option(..., "--out", "-o", help="Where to write the keystore file (mode 0600).")
PASSWORD_ENV = typer.Option(
    None,
    "--password-env",
    metavar="NAME",
    help="Read the password from this environment variable instead of a prompt.",
)
LIGHT_KDF = typer.Option(
    False, "--light-kdf", help="Weak, fast scrypt (n=4096) for throwaway test keys."
)
JSON = typer.Option(False, "--json", help="Machine-readable output on stdout.")


def _new_password(password_env: str | None) -> str:
    if password_env:
        return password_from_env(password_env)
    return prompt_secret("New keystore password", confirm=True)


def _report(address: str, out: Path, as_json: bool) -> None:
    emit(
        {"ok": True, "address": address, "path": str(out)},
        as_json=as_json,
        human=lambda: console.print(f"Wrote {out} for [bold]{address}[/] (mode 0600)"),
    )


@app.command("new")
def new(
    out: Path = OUT,
    password_env: str | None = PASSWORD_ENV,
    light_kdf: bool = LIGHT_KDF,
    as_json: bool = JSON,
) -> None:
    """Create a new random key and write it encrypted to --out."""
    password = _new_password(password_env)
    address = write_keystore(out, bytes(Account.create().key), password, light=light_kdf)
    _report(address, out, as_json)


def _parse_key(text: str) -> bytes:
    digits = text.strip().removeprefix("0x").removeprefix("0X")
    if len(digits) != 64:
        raise ConfigError("the private key must be 64 hex digits")
    try:
        return bytes.fromhex(digits)
    except ValueError:
        raise ConfigError("the private key must be 64 hex digits") from None


@app.command("import")
def import_(
    out: Path = OUT,
    key_stdin: bool = typer.Option(
        False, "--key-stdin", help="Read the private key from the first line of stdin."
    ),
    password_env: str | None = PASSWORD_ENV,
    light_kdf: bool = LIGHT_KDF,
    as_json: bool = JSON,
) -> None:
    """Encrypt an existing private key (from a hidden prompt or stdin) to --out."""
    text = sys.stdin.readline() if key_stdin else prompt_secret("Private key (hex)")
    key = _parse_key(text)
    password = _new_password(password_env)
    address = write_keystore(out, key, password, light=light_kdf)
    _report(address, out, as_json)


@app.command("address")
def address(
    path: Path = typer.Argument(..., help="A keystore file."),
    as_json: bool = JSON,
) -> None:
    """Print the address a keystore file is for (no password needed)."""
    found = read_keystore_address(path)
    emit(
        {"ok": True, "address": found, "path": str(path)},
        as_json=as_json,
        human=lambda: console.print(found),
    )
