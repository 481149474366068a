"""The `[signer]` table of agent.toml: which backend signs, and how to reach it.

    [signer]                      [signer]                    [signer]
    backend = "ledger"            backend = "kms"             backend = "keystore"
    derivation_path = "44'/60'/0'/0/0"                        path = "keys/dev.json"
                                  key_id = "arn:aws:kms:..."  password_env = "DEV_KEY_PASSWORD"
                                  region = "eu-west-1"

Secrets never appear here: a password is named by environment variable or keyring entry,
or by any secret reference (`password_ref = "vault:secret/agent#keystore"`, docs/secrets.md);
AWS credentials come from the standard AWS chain or from references (`[signer.credentials]`),
and Ledger/KMS keys never leave their device or service. Every backend accepts `address = "0x..."` to pin the expected account.
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
                    f"secrets do not belong in the config ({', '.join(found)}); use password_env, "
                    "password_keyring or password_ref for a keystore, and the standard AWS "
                    "chain or credentials references for KMS"
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
    password_ref: str | None = Field(
        default=None, description="a secret reference: env:, keyring:, vault: or aws-sm:"
    )

    @field_validator("password_ref")
    @classmethod
    def _reference(cls, value: str | None) -> str | None:
        from defiagent.secrets.reference import check_reference

        return None if value is None else check_reference(value)

    @field_validator("password_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        try:
            return check_env_name(value) if value is not None else None
        except ConfigError as exc:  # pydantic reports ValueErrors, not our errors
            raise ValueError(exc.message) from None

    @model_validator(mode="after")
    def _one_source(self) -> KeystoreSignerConfig:
        names = ("password_env", "password_keyring", "password_ref")
        given = [n for n in names if getattr(self, n)]
        if len(given) > 1:
            raise ValueError(f"give one of {', '.join(names)}, not both {given[0]} and {given[1]}")
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


class AwsCredentialRefs(BaseModel):
    """KMS credentials as secret references, for when the standard AWS chain is not used."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    @field_validator("access_key_id", "secret_access_key", "session_token")
    @classmethod
    def _reference(cls, value: str | None) -> str | None:
        from defiagent.secrets.reference import check_reference

        return None if value is None else check_reference(value)


class KmsSignerConfig(_SignerBase):
    """An AWS KMS asymmetric key, key spec ECC_SECG_P256K1, usage SIGN_VERIFY."""

    backend: Literal["kms"]
    key_id: str = Field(min_length=1, description="Key id, key ARN, alias or alias ARN.")
    region: str = Field(min_length=1)
    endpoint_url: str | None = Field(default=None, description="Only for a local KMS in tests.")
    max_attempts: int = Field(default=5, ge=1, le=10)
    credentials: AwsCredentialRefs | None = Field(
        default=None, description="secret references; default: the standard AWS chain"
    )

    @field_validator("endpoint_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        from defiagent.net.tls import tls_problem

        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("endpoint_url must be an http(s) URL")
        if value is not None and (problem := tls_problem(value)):
            raise ValueError(f"endpoint_url {problem}")
        return value


class RemoteSignerConfig(_SignerBase):
    """`defiagent signer serve` in another process (its own user): the agent holds no
    credential, only the socket's path. Pin `address` to the key the signer serves."""

    backend: Literal["remote"]
    socket: Path = Field(description="The signer process's Unix socket.")
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)


SignerConfig = Annotated[
    KeystoreSignerConfig | LedgerSignerConfig | KmsSignerConfig | RemoteSignerConfig,
    Field(discriminator="backend"),
]
_ADAPTER: TypeAdapter[SignerConfig] = TypeAdapter(SignerConfig)


def parse_signer_config(table: dict[str, Any], *, source: str = "[signer]") -> SignerConfig:
    try:
        return _ADAPTER.validate_python(table)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] in ("union_tag_invalid", "union_tag_not_found"):
            raise ConfigError(
                f'{source}: backend must be "keystore", "ledger", "kms" or "remote"'
            ) from None
        backends = ("keystore", "ledger", "kms", "remote")
        where = ".".join(str(p) for p in first["loc"] if p not in backends)
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
        if cfg.password_ref:
            from defiagent import secrets

            password = secrets.resolve(
                cfg.password_ref, what=f"the keystore password ({cfg.password_ref})"
            )
        else:
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

        if kms_client is None and cfg.credentials is not None:
            kms_client = _kms_client_from_refs(cfg)
        return KmsSigner(
            cfg.key_id,
            cfg.region,
            endpoint_url=cfg.endpoint_url,
            expected_address=cfg.address,
            retry=RetryPolicy(attempts=cfg.max_attempts),
            client=kms_client,
        )
    if isinstance(cfg, RemoteSignerConfig):
        from defiagent.signing.remote.client import RemoteSigner

        sock = cfg.socket if cfg.socket.is_absolute() or base_dir is None else base_dir / cfg.socket
        return RemoteSigner(sock, expected_address=cfg.address, timeout=cfg.timeout_seconds)
    raise ConfigError(f"unknown signer backend {getattr(cfg, 'backend', cfg)!r}")


def _kms_client_from_refs(cfg: KmsSignerConfig) -> Any:
    """A KMS client whose credentials come from secret references (memory only)."""
    import boto3
    from botocore.config import Config

    from defiagent import secrets
    from defiagent.net.tls import verify

    refs = cfg.credentials
    assert refs is not None

    def value(ref: str | None, what: str) -> str | None:
        return None if ref is None else secrets.resolve(ref, what=f"the KMS {what} ({ref})")

    session = boto3.session.Session(
        aws_access_key_id=value(refs.access_key_id, "access key id"),
        aws_secret_access_key=value(refs.secret_access_key, "secret access key"),
        aws_session_token=value(refs.session_token, "session token"),
        region_name=cfg.region,
    )
    # As KmsSigner's own client: botocore's retries off, one policy decides.
    config = Config(
        retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=10
    )
    return session.client("kms", endpoint_url=cfg.endpoint_url, config=config, verify=verify())
