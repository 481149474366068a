"""The `[signer]` table of agent.toml: which backend signs, and how to reach it.

    [signer]                      [signer]                    [signer]
    backend = "ledger"            backend = "kms"             backend = "keystore"
    derivation_path = "44'/60'/0'/0/0"                        path = "keys/dev.json"
                                  key_id = "arn:aws:kms:..."  password_env = "DEV_KEY_PASSWORD"
                                  region = "eu-west-1"

Secrets never appear here: a password is named by environment variable or keyring entry,
AWS credentials come from the standard AWS chain, and Ledger/KMS keys never leave their
device or service. Every backend accepts `address = "0x..."` to pin the expected account.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from defiagent.errors import ConfigError
from defiagent.signing import ledger_apdu
from defiagent.signing.base import Signer
from defiagent.signing.passwords import KeyringRef, check_env_name
from defiagent.types import checksum_address

# Keys that would put a secret in the config file; refused with a pointer to the right way.
_SECRET_KEYS = {
    "password",
    "passphrase",
    "private_key",
    "privatekey",
    "key",
    "mnemonic",
    "seed",
    "secret",
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
}


class _SignerBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    address: str | None = Field(
        default=None, description="Pin: refuse to sign if the backend's account is another one."
    )

    @model_validator(mode="before")
    @classmethod
    def _no_secrets(cls, data: Any) -> Any:
        if isinstance(data, dict):
            found = sorted(k for k in data if str(k).lower() in _SECRET_KEYS)
            if found:
                raise ValueError(
                    f"secrets do not belong in the config ({', '.join(found)}); use password_env "
                    "or password_keyring for a keystore, and the standard AWS chain for KMS"
                )
        return data

    @field_validator("address")
    @classmethod
    def _checksum(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return checksum_address(value)  # a wrong EIP-55 checksum is a typo: refused


class KeystoreSignerConfig(_SignerBase):
    """Encrypted keystore file, for development and tests only."""

    backend: Literal["keystore"]
    path: Path
    password_env: str | None = Field(default=None, description="NAME of the env variable.")
    password_keyring: KeyringRef | None = None

    @field_validator("password_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        try:
            return check_env_name(value) if value is not None else None
        except ConfigError as exc:  # pydantic reports ValueErrors, not our errors
            raise ValueError(exc.message) from None

    @model_validator(mode="after")
    def _one_source(self) -> KeystoreSignerConfig:
        if self.password_env and self.password_keyring:
            raise ValueError("give password_env or password_keyring, not both")
        return self


class LedgerSignerConfig(_SignerBase):
    """A Ledger with the Ethereum app, on USB."""

    backend: Literal["ledger"]
    derivation_path: str = ledger_apdu.DEFAULT_PATH
    timeout_seconds: float = Field(default=60.0, gt=0, le=600)

    @field_validator("derivation_path")
    @classmethod
    def _path(cls, value: str) -> str:
        try:
            ledger_apdu.parse_path(value)
        except ConfigError as exc:  # pydantic reports ValueErrors, not our errors
            raise ValueError(exc.message) from None
        return value


class KmsSignerConfig(_SignerBase):
    """An AWS KMS asymmetric key, key spec ECC_SECG_P256K1, usage SIGN_VERIFY."""

    backend: Literal["kms"]
    key_id: str = Field(min_length=1, description="Key id, key ARN, alias or alias ARN.")
    region: str = Field(min_length=1)
    endpoint_url: str | None = Field(default=None, description="Only for a local KMS in tests.")
    max_attempts: int = Field(default=5, ge=1, le=10)

    @field_validator("endpoint_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("endpoint_url must be an http(s) URL")
        return value


SignerConfig = Annotated[
    KeystoreSignerConfig | LedgerSignerConfig | KmsSignerConfig,
    Field(discriminator="backend"),
]
_ADAPTER: TypeAdapter[SignerConfig] = TypeAdapter(SignerConfig)


def parse_signer_config(table: dict[str, Any], *, source: str = "[signer]") -> SignerConfig:
    try:
        return _ADAPTER.validate_python(table)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] in ("union_tag_invalid", "union_tag_not_found"):
            raise ConfigError(f'{source}: backend must be "keystore", "ledger" or "kms"') from None
        where = ".".join(str(p) for p in first["loc"] if p not in ("keystore", "ledger", "kms"))
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{source}: {where + ': ' if where else ''}{message}") from None


def load_signer_config(path: Path) -> SignerConfig:
    """Read only the [signer] table of an agent.toml."""
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ConfigError(f"the config file {path} does not exist") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"the config file {path} is a folder, not a TOML file") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"the config file {path} is not TOML: it is not UTF-8 text") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"the config file {path} is not valid TOML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"the config file {path} cannot be read: {exc.strerror or exc}") from exc
    table = document.get("signer")
    if not isinstance(table, dict):
        raise ConfigError(f"the config file {path} has no [signer] table")
    return parse_signer_config(table, source=f"[signer] in {path}")


def build_signer(
    cfg: SignerConfig,
    *,
    base_dir: Path | None = None,
    ledger_dongle: Any = None,
    kms_client: Any = None,
) -> Signer:
    """The configured backend, ready to use. Nothing is contacted until the address is asked.

    `base_dir` resolves a relative keystore path (the config file's folder). The transport
    arguments are for tests and demos: an emulated Ledger, a client for a local KMS.
    """
    if isinstance(cfg, KeystoreSignerConfig):
        from defiagent.signing.keystore import KeystoreSigner
        from defiagent.signing.passwords import resolve_password

        path = cfg.path if cfg.path.is_absolute() or base_dir is None else base_dir / cfg.path
        password = resolve_password(
            env=cfg.password_env, keyring_ref=cfg.password_keyring, label="Keystore password"
        )
        return KeystoreSigner(path, password, expected_address=cfg.address)
    if isinstance(cfg, LedgerSignerConfig):
        from defiagent.signing.ledger import LedgerSigner

        return LedgerSigner(
            cfg.derivation_path,
            dongle=ledger_dongle,
            timeout=cfg.timeout_seconds,
            expected_address=cfg.address,
        )
    if isinstance(cfg, KmsSignerConfig):
        from defiagent.signing.kms import KmsSigner, RetryPolicy

        return KmsSigner(
            cfg.key_id,
            cfg.region,
            endpoint_url=cfg.endpoint_url,
            expected_address=cfg.address,
            retry=RetryPolicy(attempts=cfg.max_attempts),
            client=kms_client,
        )
    raise ConfigError(f"unknown signer backend {getattr(cfg, 'backend', cfg)!r}")
