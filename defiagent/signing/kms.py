"""AWS KMS signer: an ECC_SECG_P256K1 key that never leaves KMS.

Address: GetPublicKey (DER SubjectPublicKeyInfo) -> uncompressed point -> keccak.
Signing: Sign with MessageType=DIGEST over the keccak digest; the DER (r, s) answer is
normalised to low s and v is found by trial recovery. The IAM role needs kms:GetPublicKey
and kms:Sign on the key; credentials come only from the standard AWS chain (environment,
shared files, SSO, instance or task role), never from the agent's config.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ReadTimeoutError,
)
from eth_utils import to_checksum_address
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from defiagent.errors import ConfigError, DefiagentError, InfraError
from defiagent.signing.base import SignatureMismatch, report_mismatch
from defiagent.signing.der import MalformedDer, address_from_spki, decode_signature
from defiagent.signing.digest_signer import DigestSigner

log = logging.getLogger("defiagent.signing")

KEY_SPEC = "ECC_SECG_P256K1"
SIGNING_ALGORITHM = "ECDSA_SHA_256"  # with MessageType=DIGEST, KMS signs our digest as is

_THROTTLED = {
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "LimitExceededException",
}
_TRANSIENT = _THROTTLED | {
    "KMSInternalException",
    "InternalFailure",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "DependencyTimeoutException",
}
_CONFIG = {
    "NotFoundException",
    "DisabledException",
    "KMSInvalidStateException",
    "InvalidKeyUsageException",
    "ValidationException",
    "InvalidArnException",
}
_CREDENTIALS = {
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "ExpiredTokenException",
    "InvalidClientTokenId",
}
_NETWORK = (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError)


@dataclass(frozen=True)
class RetryPolicy:
    """Retries for throttling and transient KMS or network errors, with jittered backoff."""

    attempts: int = 5
    initial_wait: float = 0.2
    max_wait: float = 5.0


def _error_code(exc: BaseException | None) -> str | None:
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code")
    return None


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, _NETWORK) or _error_code(exc) in _TRANSIENT


class KmsSigner(DigestSigner):
    backend = "kms"

    def __init__(
        self,
        key_id: str,
        region: str,
        *,
        endpoint_url: str | None = None,
        expected_address: str | None = None,
        retry: RetryPolicy | None = None,
        client: Any = None,
    ) -> None:
        self.key_id = key_id
        self.region = region
        self.endpoint_url = endpoint_url
        self.retry = retry or RetryPolicy()
        self._expected = to_checksum_address(expected_address) if expected_address else None
        self._client = client
        self._address: str | None = None

    def __repr__(self) -> str:
        return f"KmsSigner(key_id={self.key_id!r}, region={self.region!r})"

    def _kms(self) -> Any:
        if self._client is None:
            import boto3  # heavy import, only when KMS is used

            # botocore's own retries are off: one policy (below) decides, and logs.
            config = Config(
                retries={"total_max_attempts": 1, "mode": "standard"},
                connect_timeout=5,
                read_timeout=10,
            )
            session = boto3.session.Session(region_name=self.region)
            self._client = session.client("kms", endpoint_url=self.endpoint_url, config=config)
        return self._client

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        def before_sleep(state: RetryCallState) -> None:
            assert state.outcome is not None  # called after an attempt failed: it has one
            exc = state.outcome.exception()
            what = _error_code(exc) or type(exc).__name__
            log.warning("AWS KMS %s: %s; retry %d", operation, what, state.attempt_number)

        retrying = Retrying(
            stop=stop_after_attempt(self.retry.attempts),
            # Exponential backoff plus jitter, so many agents do not retry in lockstep.
            wait=wait_exponential(multiplier=self.retry.initial_wait, max=self.retry.max_wait)
            + wait_random(0, self.retry.initial_wait),
            retry=retry_if_exception(_is_transient),
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    answer: dict[str, Any] = getattr(self._kms(), operation)(**params)
                    return answer
        except (ClientError, BotoCoreError) as exc:
            raise self._translate(operation, exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _translate(self, operation: str, exc: Exception) -> DefiagentError:
        code = _error_code(exc)
        api = {"get_public_key": "GetPublicKey", "sign": "Sign"}.get(operation, operation)
        if code in _THROTTLED:
            return InfraError(
                f"AWS KMS kept throttling {api} after {self.retry.attempts} attempts",
                remedy="lower the request rate or raise the KMS quota",
            )
        if code == "AccessDeniedException":
            return ConfigError(
                f"AWS KMS denied kms:{api} on key {self.key_id}",
                remedy="allow kms:GetPublicKey and kms:Sign on this key to the agent's role",
            )
        if code in _CONFIG:
            return ConfigError(f"AWS KMS refused {api} on key {self.key_id}: {code}")
        if code in _CREDENTIALS:
            return ConfigError(f"AWS rejected the credentials for KMS {api}: {code}")
        if isinstance(exc, NoCredentialsError):
            return ConfigError(
                "no AWS credentials were found in the standard chain",
                remedy="use an instance/task role, AWS_PROFILE, or the AWS_* environment variables",
            )
        if isinstance(exc, NoRegionError):
            return ConfigError("no AWS region is configured for the KMS signer")
        if isinstance(exc, _NETWORK):
            where = self.endpoint_url or f"KMS in {self.region}"
            return InfraError(
                f"AWS KMS is unreachable at {where} after {self.retry.attempts} tries"
            )
        return InfraError(f"AWS KMS {api} failed: {code or type(exc).__name__}")

    @property
    def address(self) -> str:
        if self._address is None:
            self._address = self._load_address()
        return self._address

    def _load_address(self) -> str:
        answer = self._call("get_public_key", KeyId=self.key_id)
        spec = answer.get("KeySpec") or answer.get("CustomerMasterKeySpec")
        if spec != KEY_SPEC:
            raise ConfigError(f"KMS key {self.key_id} has key spec {spec}, not {KEY_SPEC}")
        if answer.get("KeyUsage") != "SIGN_VERIFY":
            raise ConfigError(f"KMS key {self.key_id} is not a SIGN_VERIFY key")
        try:
            address = address_from_spki(bytes(answer["PublicKey"]))
        except MalformedDer as exc:
            raise InfraError(f"AWS KMS returned an unreadable public key: {exc}") from exc
        if self._expected and address != self._expected:
            raise report_mismatch(
                SignatureMismatch(
                    f"KMS key {self.key_id} is {address}, not the configured {self._expected}"
                ),
                backend=self.backend,
                kind="address",
            )
        return address

    def _sign_digest(self, digest: bytes) -> tuple[int, int]:
        answer = self._call(
            "sign",
            KeyId=self.key_id,
            Message=digest,
            MessageType="DIGEST",
            SigningAlgorithm=SIGNING_ALGORITHM,
        )
        try:
            return decode_signature(bytes(answer["Signature"]))
        except MalformedDer as exc:
            raise report_mismatch(
                SignatureMismatch("AWS KMS returned a malformed DER signature"),
                backend=self.backend,
                kind="signature",
                signer=self.address,
            ) from exc
