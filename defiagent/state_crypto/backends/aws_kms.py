"""An AWS KMS symmetric key wraps the data keys (KMS Encrypt/Decrypt through boto3).

Credentials come from boto3's standard chain (environment, instance role, profile), never
from the config. The data key id is the KMS encryption context, so KMS itself refuses to
unwrap a data key for another id. Timeouts are short and retries few: a KMS that cannot be
reached is an infrastructure error at start, not a hang.
"""

from __future__ import annotations

from typing import Any

from defiagent.errors import ConfigError, InfraError
from defiagent.state_crypto.backends.base import KeyBackend, missing_key, require_tls, wrong_key

# KMS answers that mean "not this key" (or no such key): a refusal, not an outage.
_WRONG = {"InvalidCiphertextException", "IncorrectKeyException"}
_MISSING = {"NotFoundException", "DisabledException", "KMSInvalidStateException"}
_DENIED = {"AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException"}


class AwsKmsBackend(KeyBackend):
    name = "aws-kms"

    def __init__(
        self, key_id: str, region: str | None = None, endpoint_url: str | None = None
    ) -> None:
        if endpoint_url:
            require_tls(endpoint_url, "the KMS endpoint_url")
        self.key_id = key_id
        self.region = region
        self.endpoint_url = endpoint_url
        self._client: Any = None

    @classmethod
    def from_params(cls, params: dict[str, str]) -> AwsKmsBackend:
        if not params.get("key_id"):
            raise ConfigError("the aws-kms state key needs key_id")
        return cls(params["key_id"], params.get("region"), params.get("endpoint_url"))

    def reference(self) -> str:
        return f"aws-kms:{self.key_id}"

    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            config = Config(
                connect_timeout=5, read_timeout=10, retries={"max_attempts": 2, "mode": "standard"}
            )
            from defiagent.net import tls

            self._client = boto3.client(
                "kms",
                region_name=self.region,
                endpoint_url=self.endpoint_url,
                config=config,
                verify=tls.verify(),
            )
        return self._client

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            NoCredentialsError,
            NoRegionError,
        )

        try:
            answer: dict[str, Any] = getattr(self.client(), operation)(**kwargs)
            return answer
        except NoCredentialsError as exc:
            raise ConfigError(
                f"no AWS credentials for {self.reference()}",
                remedy="give them through the standard chain (environment, role, profile)",
            ) from exc
        except NoRegionError as exc:
            raise ConfigError(f"no AWS region for {self.reference()}: set region") from exc
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in _WRONG:
                raise wrong_key(self.reference(), f"KMS answered {code}") from None
            if code in _MISSING:
                raise missing_key(self.reference(), f"KMS answered {code}") from None
            if code in _DENIED:
                why = f"KMS denied access ({code}): no permission, or not the key that wrapped it"
                raise missing_key(self.reference(), why) from None
            raise InfraError(f"KMS failed for {self.reference()}: {code or exc}") from None
        except BotoCoreError as exc:
            raise InfraError(f"KMS cannot be reached for {self.reference()}: {exc}") from None

    def wrap(self, key: bytes, context: dict[str, str], *, create: bool = False) -> bytes:
        answer = self._call("encrypt", KeyId=self.key_id, Plaintext=key, EncryptionContext=context)
        return bytes(answer["CiphertextBlob"])

    def unwrap(self, wrapped: bytes, context: dict[str, str]) -> bytes:
        answer = self._call(
            "decrypt", CiphertextBlob=wrapped, EncryptionContext=context, KeyId=self.key_id
        )
        return bytes(answer["Plaintext"])
