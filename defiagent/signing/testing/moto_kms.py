"""A local AWS KMS (moto server on 127.0.0.1) that signs digests as real KMS does.

For tests and demos only. moto 5.2.5 ignores MessageType=DIGEST and hashes the digest
again with SHA-256, so a correct Ethereum signer would get signatures over the wrong hash.
This server is patched to honour DIGEST (ECDSA over the given 32 bytes, prehashed), the
behaviour of the real service; the signer itself is never bent to the emulator.

It can also misbehave on purpose, to test the signer's checks: throttle, answer a
malformed DER signature, sign with another key, or return the high-s form.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

if TYPE_CHECKING:
    from moto.kms.responses import KmsResponse
    from types_boto3_kms import KMSClient  # the stubs are a dev dependency: types only
    from types_boto3_kms.literals import KeySpecType, KeyUsageTypeType


@dataclass
class Misbehaviour:
    throttle_next: int = 0  # answer this many requests with ThrottlingException
    malformed_der: bool = False
    other_key: bool = False
    high_s: bool = False


_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


class LocalKms:
    """Start with `with LocalKms() as kms:`; `kms.endpoint_url`, `kms.create_key()`."""

    def __init__(self, region: str = "us-east-1") -> None:
        self.region = region
        self.misbehave = Misbehaviour()
        self._server: Any = None
        self._original_sign: Any = None
        self._lock = threading.Lock()
        self._other_key = ec.generate_private_key(ec.SECP256K1())
        self.sign_calls = 0

    @property
    def endpoint_url(self) -> str:
        host, port = self._server.get_host_and_port()
        return f"http://{host}:{port}"

    def start(self) -> LocalKms:
        from moto.kms.responses import KmsResponse
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        self._original_sign = KmsResponse.sign
        patched: Any = KmsResponse  # a method replaced on purpose, which mypy refuses
        patched.sign = self._patched_sign()
        # Port 0: the OS picks a free port, no race with other test runs.
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        return self

    def stop(self) -> None:
        from moto.kms.responses import KmsResponse

        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._original_sign is not None:
            patched: Any = KmsResponse
            patched.sign = self._original_sign
            self._original_sign = None

    def __enter__(self) -> LocalKms:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client(self) -> KMSClient:
        import boto3

        return boto3.client("kms", region_name=self.region, endpoint_url=self.endpoint_url)

    def create_key(
        self, key_spec: KeySpecType = "ECC_SECG_P256K1", usage: KeyUsageTypeType = "SIGN_VERIFY"
    ) -> str:
        meta = self.client().create_key(KeySpec=key_spec, KeyUsage=usage)["KeyMetadata"]
        return meta["KeyId"]

    def _patched_sign(self) -> Callable[[KmsResponse], str]:
        local = self
        original = self._original_sign

        def sign(response: KmsResponse) -> str:
            from moto.core.exceptions import JsonRESTError
            from moto.kms.utils import ECDSAPrivateKey

            with local._lock:
                local.sign_calls += 1
                if local.misbehave.throttle_next > 0:
                    local.misbehave.throttle_next -= 1
                    raise JsonRESTError("ThrottlingException", "Rate exceeded")
            if response._get_param("MessageType") != "DIGEST":
                answer: str = original(response)
                return answer
            key_id = response._get_param("KeyId")
            digest = response._get_param("Message")  # moto base64-decodes it
            algorithm = response._get_param("SigningAlgorithm")
            response._validate_key_id(key_id)
            key = response.kms_backend.describe_key(key_id)
            if algorithm != "ECDSA_SHA_256" or algorithm not in key.signing_algorithms:
                raise JsonRESTError("ValidationException", f"bad SigningAlgorithm {algorithm}")
            if len(digest) != 32:
                raise JsonRESTError("ValidationException", "Digest is not 32 bytes")
            assert isinstance(key.private_key, ECDSAPrivateKey)  # it signs with ECDSA_SHA_256
            private = local._other_key if local.misbehave.other_key else key.private_key.private_key
            # The real KMS DIGEST behaviour: sign these 32 bytes, do not hash them again.
            der = private.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
            if local.misbehave.high_s:
                r, s = utils.decode_dss_signature(der)
                der = utils.encode_dss_signature(r, s if s > _N // 2 else _N - s)
            if local.misbehave.malformed_der:
                der = der[:-4]  # truncated: the lengths no longer add up
            return json.dumps(
                {
                    "KeyId": key.arn,
                    "Signature": base64.b64encode(der).decode(),
                    "SigningAlgorithm": algorithm,
                }
            )

        return sign
