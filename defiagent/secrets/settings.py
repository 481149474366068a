"""The `[secrets]` table of agent.toml: how to reach Vault/OpenBao and Secrets Manager.

    [secrets]
    refresh_seconds = 3600            # re-read every cached value this often (optional)

    [secrets.vault]
    url = "https://vault.example:8200"
    auth = "approle"                  # or "token-file"
    role_id = "…"                     # AppRole: the role id (not a secret on its own)
    secret_id_file = "/run/secrets/defiagent-secret-id"
    # token_file = "/run/secrets/vault-token"   (auth = "token-file")
    ca_bundle = "/etc/ssl/vault-ca.pem"         # optional, verification is always on

    [secrets.aws_sm]
    region = "eu-west-1"              # credentials: the standard AWS chain

The credentials that open the vault come from files (or the AWS chain), never this file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from defiagent.net.tls import require_secure_url


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VaultSettings(_Section):
    """`[secrets.vault]`: a Vault or OpenBao server with KV v2."""

    url: str = Field(description="https (plain http only on loopback)")
    auth: Literal["token-file", "approle"] = "token-file"
    token_file: Path | None = Field(default=None, description="a file holding a Vault token")
    role_id: str | None = Field(default=None, description="AppRole role id")
    secret_id_file: Path | None = Field(default=None, description="a file holding the secret id")
    approle_mount: str = "approle"
    namespace: str | None = None
    ca_bundle: Path | None = Field(default=None, description="PEM CAs that sign its certificate")
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return require_secure_url(value).rstrip("/")

    @model_validator(mode="after")
    def _auth(self) -> VaultSettings:
        if self.auth == "token-file" and self.token_file is None:
            raise ValueError('auth = "token-file" needs token_file')
        if self.auth == "approle" and (self.role_id is None or self.secret_id_file is None):
            raise ValueError('auth = "approle" needs role_id and secret_id_file')
        return self


class AwsSmSettings(_Section):
    """`[secrets.aws_sm]`: AWS Secrets Manager; credentials from the standard AWS chain."""

    region: str = Field(min_length=1)
    endpoint_url: str | None = Field(default=None, description="only for a local emulator")
    ca_bundle: Path | None = None
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)

    @field_validator("endpoint_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else require_secure_url(value)


class SecretsConfig(_Section):
    vault: VaultSettings | None = None
    aws_sm: AwsSmSettings | None = None
    refresh_seconds: float | None = Field(
        default=None, gt=0, description="re-read cached values this often; default on SIGHUP only"
    )

    def resolved(self, base_dir: Path) -> SecretsConfig:
        """Relative file paths made absolute against the config file's folder."""

        def fix(p: Path | None) -> Path | None:
            if p is None:
                return None
            p = p.expanduser()
            return p if p.is_absolute() else (base_dir / p).resolve()

        update: dict[str, object] = {}
        if self.vault is not None:
            update["vault"] = self.vault.model_copy(
                update={
                    "token_file": fix(self.vault.token_file),
                    "secret_id_file": fix(self.vault.secret_id_file),
                    "ca_bundle": fix(self.vault.ca_bundle),
                }
            )
        if self.aws_sm is not None:
            update["aws_sm"] = self.aws_sm.model_copy(
                update={"ca_bundle": fix(self.aws_sm.ca_bundle)}
            )
        return self.model_copy(update=update)
