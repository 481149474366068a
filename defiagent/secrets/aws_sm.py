"""`aws-sm:secret-id#field`: AWS Secrets Manager through boto3 (the standard credential chain).

`secret-id` is a name or an ARN; `#field` picks a key of the secret's JSON string (without
it, the whole string is the value). Binary secrets are refused.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from defiagent.net.tls import verify
from defiagent.secrets.errors import SecretUnavailable
from defiagent.secrets.reference import SecretRef
from defiagent.secrets.settings import AwsSmSettings
from defiagent.secrets.source import Fetched, pick_field

_MISSING = ("ResourceNotFoundException",)
_DENIED = (
    "AccessDeniedException",
    "AccessDenied",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "ExpiredTokenException",
)


class AwsSecretsManagerSource:
    scheme = "aws-sm"

    def __init__(self, settings: AwsSmSettings | None) -> None:
        self.settings = settings
        self._client: Any = None
        self._lock = threading.Lock()

    def _sm(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            s = self.settings
            assert s is not None
            self._client = boto3.session.Session(region_name=s.region).client(
                "secretsmanager",
                endpoint_url=s.endpoint_url,
                verify=verify(s.ca_bundle),
                config=Config(
                    connect_timeout=s.timeout_seconds,
                    read_timeout=s.timeout_seconds,
                    retries={"max_attempts": 3, "mode": "standard"},
                ),
            )
        return self._client

    def read(self, ref: SecretRef) -> Fetched:
        if self.settings is None:
            raise SecretUnavailable(
                f"the secret {ref} needs a [secrets.aws_sm] table (region) in the config"
            )
        where = f"Secrets Manager ({self.settings.region})"
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, SSLError

        try:
            with self._lock:
                answer = self._sm().get_secret_value(SecretId=ref.body)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in _MISSING:
                raise SecretUnavailable(f"the secret {ref} does not exist in {where}") from None
            if code in _DENIED:
                raise SecretUnavailable(
                    f"the secret {ref} was denied by {where} ({code})"
                ) from None
            raise SecretUnavailable(
                f"the secret {ref}: {where} answered {code or 'an error'}"
            ) from None
        except NoCredentialsError:
            raise SecretUnavailable(
                f"the secret {ref}: no AWS credentials for {where}",
                remedy="configure the standard AWS chain (role, profile or AWS_* variables)",
            ) from None
        except SSLError:
            raise SecretUnavailable(
                f"the secret {ref}: {where} has a certificate that does not verify"
            ) from None
        except BotoCoreError as exc:
            raise SecretUnavailable(
                f"the secret {ref}: {where} cannot be reached ({type(exc).__name__})"
            ) from None
        text = answer.get("SecretString")
        if not isinstance(text, str):
            raise SecretUnavailable(f"the secret {ref} is binary in {where}; store it as text")
        if ref.field is None:
            if not text:
                raise SecretUnavailable(f"the secret {ref} is empty in {where}")
            return Fetched(text)
        try:
            data = json.loads(text)
        except ValueError:
            raise SecretUnavailable(
                f"the secret {ref} is not a JSON object in {where}, so #{ref.field} cannot be read"
            ) from None
        return Fetched(pick_field(data, ref, where=where))
