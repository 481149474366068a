"""`vault:mount/path#field`: a KV v2 secret in HashiCorp Vault or OpenBao, through hvac.

Auth is `token-file` (a Vault token in a file only the agent can read) or `approle`
(role id in the config, secret id in such a file). The values are cached by the resolver
for as long as their lease (or the login token's TTL) lasts; a token that expired or was
revoked is renewed by logging in again once (AppRole) or re-reading the token file.
"""

from __future__ import annotations

import stat
import threading
import time
from pathlib import Path
from typing import Any

from defiagent.net.tls import verify
from defiagent.secrets.errors import SecretUnavailable
from defiagent.secrets.reference import SecretRef
from defiagent.secrets.settings import VaultSettings
from defiagent.secrets.source import Fetched, pick_field


def read_credential_file(path: Path, what: str) -> str:
    """A token or secret id from a file that only its owner may read."""
    try:
        mode = path.stat().st_mode
        text = path.read_text().strip()
    except OSError as exc:
        raise SecretUnavailable(
            f"the {what} file {path} cannot be read ({exc.strerror or type(exc).__name__})"
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretUnavailable(
            f"the {what} file {path} is readable by other users", remedy=f"chmod 600 {path}"
        )
    if not text:
        raise SecretUnavailable(f"the {what} file {path} is empty")
    return text


class VaultSource:
    scheme = "vault"

    def __init__(self, settings: VaultSettings | None) -> None:
        self.settings = settings
        self._client: Any = None
        self._token_expires: float | None = None  # monotonic; None = no expiry
        self._lock = threading.Lock()

    def read(self, ref: SecretRef) -> Fetched:
        if self.settings is None:
            raise SecretUnavailable(
                f"the secret {ref} needs a [secrets.vault] table (url and auth) in the config"
            )
        mount, _, path = ref.body.partition("/")
        with self._lock:
            for attempt in (1, 2):
                client = self._login(fresh=attempt == 2)
                try:
                    answer = client.secrets.kv.v2.read_secret_version(
                        path=path, mount_point=mount, raise_on_deleted_version=True
                    )
                    break
                except Exception as exc:
                    if attempt == 1 and _is_forbidden(exc):
                        continue  # the token may have expired: log in again, once
                    raise self._failure(ref, exc) from None
        data = (answer.get("data") or {}).get("data")
        value = pick_field(data, ref, where=f"Vault at {self.settings.url}")
        ttls = [t for t in (answer.get("lease_duration") or 0, self._token_ttl()) if t]
        return Fetched(value, ttl_seconds=min(ttls) if ttls else None)

    def _token_ttl(self) -> float | None:
        if self._token_expires is None:
            return None
        return max(0.0, self._token_expires - time.monotonic())

    def _login(self, *, fresh: bool) -> Any:
        expired = self._token_expires is not None and time.monotonic() >= self._token_expires
        if self._client is not None and not fresh and not expired:
            return self._client
        import hvac

        s = self.settings
        assert s is not None
        # No redirects: a redirect would carry the X-Vault-Token header to another address.
        client = hvac.Client(
            url=s.url,
            verify=verify(s.ca_bundle),
            timeout=s.timeout_seconds,
            namespace=s.namespace,
            allow_redirects=False,
        )
        try:
            if s.auth == "approle":
                assert s.role_id is not None
                assert s.secret_id_file is not None
                secret_id = read_credential_file(s.secret_id_file, "AppRole secret id")
                auth = client.auth.approle.login(
                    role_id=s.role_id, secret_id=secret_id, mount_point=s.approle_mount
                )["auth"]
                ttl = float(auth.get("lease_duration") or 0)
            else:
                assert s.token_file is not None
                client.token = read_credential_file(s.token_file, "Vault token")
                ttl = float(client.auth.token.lookup_self()["data"].get("ttl") or 0)
        except SecretUnavailable:
            raise
        except Exception as exc:
            raise self._failure(None, exc) from None
        self._client = client
        self._token_expires = time.monotonic() + ttl if ttl > 0 else None
        return client

    def _failure(self, ref: SecretRef | None, exc: Exception) -> SecretUnavailable:
        import hvac.exceptions as hx
        import requests

        assert self.settings is not None
        url = self.settings.url
        what = f"the secret {ref}" if ref is not None else f"the login to Vault at {url}"
        if isinstance(exc, hx.InvalidPath):
            return SecretUnavailable(f"{what} does not exist in Vault at {url}")
        if isinstance(exc, (hx.Forbidden, hx.Unauthorized, hx.InvalidRequest)):
            return SecretUnavailable(f"{what} was denied by Vault at {url} (check its policy)")
        if isinstance(exc, requests.exceptions.SSLError):
            return SecretUnavailable(
                f"{what}: Vault at {url} has a certificate that does not verify",
                remedy="set [secrets.vault] ca_bundle to the CA that signed it",
            )
        if isinstance(exc, (requests.ConnectionError, requests.Timeout, hx.VaultDown)):
            return SecretUnavailable(f"{what}: Vault at {url} cannot be reached")
        return SecretUnavailable(f"{what}: Vault at {url} answered {type(exc).__name__}")


def _is_forbidden(exc: Exception) -> bool:
    import hvac.exceptions as hx

    return isinstance(exc, (hx.Forbidden, hx.Unauthorized))
