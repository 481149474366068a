"""A key in Vault's (or OpenBao's) transit engine wraps the data keys (hvac).

The token is a reference (`env:NAME`, `keyring:service/name`), resolved when the key is
used and never saved. The data key id is the transit associated data, so Vault itself
refuses to unwrap a data key for another id. A remote Vault must be https.
"""

from __future__ import annotations

import base64
from typing import Any

from defiagent.errors import ConfigError, InfraError
from defiagent.state_crypto.backends.base import KeyBackend, missing_key, require_tls, wrong_key


def _aad(context: dict[str, str]) -> str:
    text = "\x00".join(f"{k}={context[k]}" for k in sorted(context))
    return base64.b64encode(text.encode()).decode()


class VaultTransitBackend(KeyBackend):
    name = "vault-transit"

    def __init__(
        self,
        url: str,
        key_name: str = "defiagent-state",
        mount: str = "transit",
        token: str = "env:VAULT_TOKEN",  # noqa: S107 - a reference to the token, not one
        ca_bundle: str | None = None,
    ) -> None:
        require_tls(url, "the Vault url")
        self.url = url.rstrip("/")
        self.key_name = key_name
        self.mount = mount
        self.token_ref = token
        self.ca_bundle = ca_bundle
        self._client: Any = None

    @classmethod
    def from_params(cls, params: dict[str, str]) -> VaultTransitBackend:
        if not params.get("url"):
            raise ConfigError("the vault-transit state key needs url")
        return cls(
            params["url"],
            params.get("key_name", "defiagent-state"),
            params.get("mount", "transit"),
            params.get("token", "env:VAULT_TOKEN"),
            params.get("ca_bundle"),
        )

    def reference(self) -> str:
        return f"vault-transit:{self.url}/{self.mount}/{self.key_name}"

    def client(self) -> Any:
        if self._client is None:
            import hvac

            from defiagent.strategy.secrets import resolve_secret

            token = resolve_secret(self.token_ref, what=f"the Vault token ({self.token_ref})")
            from defiagent.net import tls

            # the configured CA bundle, else [tls] ca_bundle, else the system store: never off
            verify: bool | str = self.ca_bundle or tls.verify()
            self._client = hvac.Client(url=self.url, token=token, verify=verify, timeout=10)
        return self._client

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        import hvac.exceptions as hv
        import requests

        transit = self.client().secrets.transit
        try:
            answer: dict[str, Any] = getattr(transit, operation)(mount_point=self.mount, **kwargs)
            return answer
        except hv.InvalidRequest as exc:
            if "key not found" in str(exc):
                raise missing_key(self.reference(), "no such transit key") from None
            raise wrong_key(self.reference(), f"Vault answered: {_first(exc)}") from None
        except (hv.Forbidden, hv.Unauthorized) as exc:
            raise missing_key(self.reference(), f"Vault denied access: {_first(exc)}") from None
        except hv.InvalidPath as exc:
            raise missing_key(
                self.reference(), f"no such transit key or mount: {_first(exc)}"
            ) from None
        except (hv.VaultError, requests.RequestException) as exc:
            raise InfraError(
                f"Vault cannot be reached for {self.reference()}: {_first(exc)}"
            ) from None

    def _ensure_key(self) -> None:
        import hvac.exceptions as hv

        transit = self.client().secrets.transit
        try:
            transit.read_key(name=self.key_name, mount_point=self.mount)
        except hv.InvalidPath:
            self._call("create_key", name=self.key_name, key_type="aes256-gcm96")

    def wrap(self, key: bytes, context: dict[str, str], *, create: bool = False) -> bytes:
        if create:
            self._ensure_key()
        answer = self._call(
            "encrypt_data",
            name=self.key_name,
            plaintext=base64.b64encode(key).decode(),
            associated_data=_aad(context),
        )
        return str(answer["data"]["ciphertext"]).encode()

    def unwrap(self, wrapped: bytes, context: dict[str, str]) -> bytes:
        answer = self._call(
            "decrypt_data",
            name=self.key_name,
            ciphertext=wrapped.decode(),
            associated_data=_aad(context),
        )
        return base64.b64decode(answer["data"]["plaintext"])


def _first(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
