"""The devnet's throwaway keys: one random password in DIR/keys/password (0600), and
encrypted keystores (0600) for the agent, the operator who pins strategies, two reviewers
and an auditor, in DIR/keys (0700).

They are keys for a local chain that dies with `devnet down`; the light scrypt work factor
keeps `up` quick. Nothing here is meant for a real chain: there, make keys with
`defiagent keystore new` (full work factor) or use a Ledger or KMS.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from defiagent.errors import ConfigError
from defiagent.signing.keystore import write_keystore

# The NAME of the variable agent.toml reads the password from; `up` prints the export.
PASSWORD_ENV = "DEFIAGENT_DEVNET_PASSWORD"  # noqa: S105 - a variable name, not a password
ROLES = ("agent", "operator", "reviewer-1", "reviewer-2", "auditor")


@dataclass
class DevnetKeys:
    folder: Path
    password_file: Path
    password: str
    accounts: dict[str, LocalAccount]  # role -> account, in memory for `up` only

    def path(self, role: str) -> Path:
        return self.folder / f"{role}.json"

    def address(self, role: str) -> str:
        return self.accounts[role].address


def make_keys(folder: Path) -> DevnetKeys:
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        raise ConfigError(f"{folder} already exists; refusing to overwrite keys") from None
    password = secrets.token_urlsafe(24)
    password_file = folder / "password"
    # O_EXCL and 0600 from the first byte: no window in which another user could read it.
    fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password + "\n")
    accounts: dict[str, LocalAccount] = {}
    for role in ROLES:
        account: LocalAccount = Account.create()
        write_keystore(folder / f"{role}.json", bytes(account.key), password, light=True)
        accounts[role] = account
    return DevnetKeys(folder, password_file, password, accounts)
