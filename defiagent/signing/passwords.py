"""Where a keystore password comes from: an environment variable, the OS keyring, a prompt.

Never from argv or a config value: the config names the variable or keyring entry, and
the secret itself is looked up at run time.
"""

from __future__ import annotations

import getpass
import os
import re
import sys

from pydantic import BaseModel, ConfigDict

from defiagent.errors import ConfigError

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class KeyringRef(BaseModel):
    """An entry in the OS keyring (`keyring set SERVICE USERNAME` stores it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    service: str
    username: str


def check_env_name(name: str) -> str:
    if not _ENV_NAME.match(name):
        raise ConfigError(
            "password_env must be the NAME of an environment variable, not the password itself"
        )
    return name


def password_from_env(name: str) -> str:
    value = os.environ.get(check_env_name(name))
    if not value:
        raise ConfigError(f"the environment variable {name} (the keystore password) is not set")
    return value


def password_from_keyring(ref: KeyringRef) -> str:
    import keyring
    from keyring.errors import KeyringError

    try:
        value = keyring.get_password(ref.service, ref.username)
    except KeyringError as exc:
        raise ConfigError(f"the OS keyring cannot be read: {exc}") from exc
    if not value:
        raise ConfigError(
            f"the OS keyring has no password for service {ref.service!r}, user {ref.username!r}",
            remedy=f"store it with: keyring set {ref.service} {ref.username}",
        )
    return value


def prompt_secret(label: str, *, confirm: bool = False) -> str:
    """Ask for a secret without echo on a terminal; read one line from stdin otherwise."""
    if sys.stdin is not None and sys.stdin.isatty():
        value = getpass.getpass(f"{label}: ")
        if confirm and getpass.getpass(f"{label} (again): ") != value:
            raise ConfigError("the two entries do not match")
    else:
        value = _read_line(label)
        if confirm and _read_line(label) != value:
            raise ConfigError("the two entries do not match")
    if not value:
        raise ConfigError(f"no {label.lower()} was given")
    return value


def _read_line(label: str) -> str:
    try:
        line = sys.stdin.readline()
    except (OSError, ValueError) as exc:  # no stdin at all (e.g. a daemon)
        raise ConfigError(f"cannot read the {label.lower()}: no terminal and no stdin") from exc
    return line.rstrip("\r\n")


def resolve_password(
    *, env: str | None = None, keyring_ref: KeyringRef | None = None, label: str = "Password"
) -> str:
    if env:
        return password_from_env(env)
    if keyring_ref:
        return password_from_keyring(keyring_ref)
    return prompt_secret(label)
