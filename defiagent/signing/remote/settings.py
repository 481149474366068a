"""signer.toml: what the signer process owns and how strict it is.

    chain_id = 1
    rpc_url = "https://rpc.example"          # its own RPC, to read code hashes
    allowlist_dir = "/etc/defiagent-signer/allowlist"   # its own copy, signatures checked
    state_dir = "/var/lib/defiagent-signer"  # audit log, spend ledger, kill switch
    socket = "/run/defiagent-signer/signer.sock"
    allowed_uids = [1001]                    # the agent's user; default: this user only
    account = "0x..."                        # optional: where proceeds may go (a Safe)

    [signer]                                 # the credential, as in agent.toml
    backend = "kms"
    key_id = "arn:aws:kms:..."
    region = "eu-west-1"

    [limits.per_tx_value_cap]                # the guard's own rule sections
    max_value = 2000
    [limits.window_value_cap]
    max_value = 20000
    window_seconds = 86400

    [[assets]]                               # how the signer values what a call spends
    asset = "ETH"                            # or a token address
    decimals = 18
    price = 4000.0                           # numeraire per whole unit (err on the high side)

The limits are read from this file only, never from the agent: a compromised agent cannot
raise them. A missing [limits] section means the guard's defaults.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from defiagent.errors import ConfigError
from defiagent.monitoring.alerts import AlertsConfig
from defiagent.signing.config import SignerConfig, parse_signer_config
from defiagent.types import checksum_address

DEFAULT_TIMEOUT = 5.0


class AssetPrice(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    asset: str = Field(description='"ETH" or a token address')
    decimals: int = Field(ge=0, le=36)
    price: float = Field(gt=0, description="numeraire per whole unit")

    @field_validator("asset")
    @classmethod
    def _asset(cls, value: str) -> str:
        return "ETH" if value.upper() == "ETH" else checksum_address(value)

    @property
    def per_unit(self) -> float:
        """Numeraire per smallest unit, the form the guard's `prices` take."""
        return float(self.price / 10**self.decimals)


class SignerServiceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    chain_id: int = Field(gt=0)
    rpc_url: str
    allowlist_dir: Path
    state_dir: Path
    socket: Path
    allowed_uids: list[int] = Field(default_factory=list, description="default: this user")
    reviewers_sha256: str | None = None
    account: str | None = Field(default=None, description="recipient: the key's address or a Safe")
    request_timeout_seconds: float = Field(default=DEFAULT_TIMEOUT, gt=0, le=60)
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    signer: dict[str, Any]
    limits: dict[str, Any] = Field(default_factory=dict)
    assets: list[AssetPrice] = Field(default_factory=list)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    safe: dict[str, Any] | None = Field(
        default=None, description="the Safe whose guard this key drives ([safe] of agent.toml)"
    )

    def safe_config(self) -> Any:
        """The `[safe]` table as defiagent.safe's SafeConfig (for rotation), or None."""
        if self.safe is None:
            return None
        from defiagent.safe.config import SafeConfig

        try:
            return SafeConfig.model_validate(self.safe)
        except ValidationError as exc:
            raise ConfigError(f"[safe] of the signer config: {exc.errors()[0]['msg']}") from None

    @field_validator("rpc_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value.startswith(("http://", "https://")):
            return value
        from defiagent.secrets.reference import check_reference

        try:  # a URL with an API key is a secret: a reference such as env:NAME
            return check_reference(value)
        except ValueError:
            raise ValueError("must be an http(s) URL or a secret reference (env:NAME)") from None

    def rpc_endpoint(self) -> str:
        """The RPC URL, its secret reference resolved (into memory only)."""
        if self.rpc_url.startswith(("http://", "https://")):
            return self.rpc_url
        from defiagent import secrets

        return secrets.resolve(self.rpc_url, what=f"the signer's rpc_url ({self.rpc_url})")

    @field_validator("account")
    @classmethod
    def _account(cls, value: str | None) -> str | None:
        return checksum_address(value) if value is not None else None

    @field_validator("allowed_uids")
    @classmethod
    def _uids(cls, value: list[int]) -> list[int]:
        if any(uid < 0 for uid in value):
            raise ValueError("a uid is a number >= 0")
        return value

    @property
    def uids(self) -> frozenset[int]:
        return frozenset(self.allowed_uids or [os.getuid()])

    def signer_config(self) -> SignerConfig:
        cfg = parse_signer_config(self.signer, source="[signer] of the signer config")
        if cfg.backend == "remote":
            raise ConfigError("the signer process cannot itself use a remote signer")
        return cfg

    def resolved(self, base: Path) -> SignerServiceConfig:
        def fix(p: Path) -> Path:
            return p if p.is_absolute() else (base / p)

        signer = dict(self.signer)
        if isinstance(signer.get("path"), str) and not Path(signer["path"]).is_absolute():
            signer["path"] = str(base / signer["path"])
        return self.model_copy(
            update={
                "allowlist_dir": fix(self.allowlist_dir),
                "state_dir": fix(self.state_dir),
                "socket": fix(self.socket),
                "signer": signer,
            }
        )


def parse_service_config(data: dict[str, Any], *, source: str) -> SignerServiceConfig:
    try:
        cfg = SignerServiceConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{source}: {where + ': ' if where else ''}{message}") from None
    cfg.signer_config()  # a bad [signer] table is a config error now, not at first use
    return cfg


def load_service_config(path: Path) -> SignerServiceConfig:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"the signer config {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"the signer config {path} is a folder, not a TOML file") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"the signer config {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"the signer config {path} cannot be read: {exc.strerror}") from None
    return parse_service_config(data, source=str(path)).resolved(path.parent.resolve())
