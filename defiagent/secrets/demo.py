"""The demo's secrets in a local OpenBao (`defiagent demo --secrets openbao`).

A dev server on loopback holds the RPC URL (with a throwaway API key in its query), the
keystore password, the alert webhook URL (with a throwaway token in its path) and a model
API key for the strategy; the demo's config names them only as `vault:` references and
reads them through a read-only token scoped to that one path, kept in a 0600 file. The
values are generated in memory, written only into OpenBao (in-memory storage).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from defiagent.testing.openbao import OpenBaoDev

MOUNT = "secret"
PATH = "defiagent/demo"


def _ref(name: str) -> str:
    return f"vault:{MOUNT}/{PATH}#{name}"


@dataclass
class DemoVault:
    bao: OpenBaoDev
    token_file: Path
    values: dict[str, str] = field(default_factory=dict)

    def store(self, **values: str) -> dict[str, str]:
        """Write these values and return name -> `vault:` reference."""
        self.values.update(values)
        self.bao.kv_put(PATH, dict(self.values), mount=MOUNT)
        return {name: _ref(name) for name in values}

    def secrets_table(self) -> dict[str, Any]:
        return {
            "vault": {"url": self.bao.url, "auth": "token-file", "token_file": str(self.token_file)}
        }

    @staticmethod
    def new_token() -> str:
        return secrets.token_urlsafe(18)


@contextmanager
def demo_vault(workdir: Path) -> Iterator[DemoVault]:
    with OpenBaoDev() as bao:
        token = bao.token_for(paths=[f"{MOUNT}/data/{PATH}"], name="defiagent-demo")
        token_file = workdir / "vault-token"
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(token)
        token_file.chmod(0o600)
        try:
            yield DemoVault(bao, token_file)
        finally:
            token_file.unlink(missing_ok=True)


def vault_keystore(workdir: Path, vault: DemoVault) -> tuple[Any, dict[str, Any]]:
    """A throwaway keystore whose password lives only in OpenBao; the signer is opened
    through its `password_ref`, as `defiagent run` would open it."""
    from eth_account import Account

    from defiagent import secrets as secret_refs
    from defiagent.secrets.settings import SecretsConfig
    from defiagent.signing.config import build_signer, parse_signer_config
    from defiagent.signing.keystore import write_keystore

    key_path = workdir / "agent-keystore.json"
    password = secrets.token_urlsafe(24)  # in memory, then only in OpenBao
    write_keystore(key_path, bytes(Account.create().key), password, light=True)
    refs = vault.store(keystore_password=password)
    del password
    table = {
        "backend": "keystore",
        "path": str(key_path),
        "password_ref": refs["keystore_password"],
    }
    secret_refs.configure(SecretsConfig.model_validate(vault.secrets_table()))
    return build_signer(parse_signer_config(table)), table


def with_vault_secrets(cfg: Any, vault: DemoVault, *, rpc_url: str, webhook_url: str) -> Any:
    """The demo config with its RPC URL, webhook URL and the first strategy's model API key
    moved into OpenBao, named by `vault:` references, and `[secrets.vault]` set."""
    from defiagent.config import parse_config

    refs = vault.store(
        # anvil ignores the query: it stands in for a provider's API key in the URL
        rpc_url=f"{rpc_url}/?apikey={vault.new_token()}",
        webhook_url=f"{webhook_url}/{vault.new_token()}",
        model_api_key=f"sk-demo-{vault.new_token()}",
    )
    data = cfg.model_dump(mode="json")
    data.pop("strategy", None)  # the demo runs [[strategies]]
    data["rpc_url"] = refs["rpc_url"]
    data["alerts"]["webhook_url"] = refs["webhook_url"]
    data["strategies"][0]["secrets"] = {"api_key": refs["model_api_key"]}
    data["secrets"] = vault.secrets_table()
    return parse_config(data, source="the demo config")
