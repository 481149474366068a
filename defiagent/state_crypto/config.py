"""`[state.encryption]`: which key-encryption backend wraps the state dir's data keys.

Off by default: the demo and the tests run on throwaway state dirs, and turning it on for
an existing state dir is an explicit `defiagent state rekey` (docs/privacy.md). Every field
here is a name or a reference (`env:NAME`, `keyring:service/name`), never a key or a token.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

BackendName = Literal["keyring", "aws-kms", "vault-transit"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KeyringKek(_Section):
    """A 256-bit key-encryption key kept in the OS keyring (made on first use)."""

    service: str = Field(default="defiagent", min_length=1)
    username: str = Field(default="state-key", min_length=1)


class AwsKmsKek(_Section):
    """A symmetric AWS KMS key: the data keys are wrapped by KMS Encrypt/Decrypt."""

    key_id: str = Field(min_length=1, description="key id, ARN or alias/NAME")
    region: str | None = None
    endpoint_url: str | None = Field(default=None, description="a KMS-compatible endpoint")


class VaultTransitKek(_Section):
    """A key in Vault's (or OpenBao's) transit engine: the data keys never leave wrapped."""

    url: str = Field(min_length=1)
    key_name: str = Field(default="defiagent-state", min_length=1)
    mount: str = Field(default="transit", min_length=1)
    token: str = Field(
        default="env:VAULT_TOKEN", description="a reference to the Vault token, never the token"
    )
    ca_bundle: Path | None = None


class EncryptionConfig(_Section):
    enabled: bool = Field(
        default=False, description="seal the state dir's sensitive files (docs/privacy.md)"
    )
    backend: BackendName = "keyring"
    keyring: KeyringKek = Field(default_factory=KeyringKek)
    aws_kms: AwsKmsKek | None = None
    vault_transit: VaultTransitKek | None = None

    @model_validator(mode="after")
    def _backend_section(self) -> EncryptionConfig:
        if self.enabled and self.backend == "aws-kms" and self.aws_kms is None:
            raise ValueError("backend aws-kms needs a [state.encryption.aws_kms] table")
        if self.enabled and self.backend == "vault-transit" and self.vault_transit is None:
            raise ValueError("backend vault-transit needs a [state.encryption.vault_transit] table")
        return self

    def backend_params(self) -> dict[str, str]:
        """The chosen backend's settings as saved in the state dir's key file (no secret)."""
        section: BaseModel
        if self.backend == "aws-kms":
            assert self.aws_kms is not None
            section = self.aws_kms
        elif self.backend == "vault-transit":
            assert self.vault_transit is not None
            section = self.vault_transit
        else:
            section = self.keyring
        return {k: str(v) for k, v in section.model_dump().items() if v is not None}


class StateConfig(_Section):
    encryption: EncryptionConfig = Field(default_factory=EncryptionConfig)
