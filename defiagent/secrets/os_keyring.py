"""`keyring:service/name`: the OS keyring (`keyring set SERVICE NAME` stores it)."""

from __future__ import annotations

from defiagent.secrets.errors import SecretUnavailable
from defiagent.secrets.reference import SecretRef
from defiagent.secrets.source import Fetched


class KeyringSource:
    scheme = "keyring"

    def read(self, ref: SecretRef) -> Fetched:
        import keyring
        from keyring.errors import KeyringError

        service, _, username = ref.body.partition("/")
        try:
            value = keyring.get_password(service, username)
        except KeyringError as exc:
            raise SecretUnavailable(
                f"the OS keyring cannot be read for {ref} ({type(exc).__name__})"
            ) from None
        if not value:
            raise SecretUnavailable(
                f"the OS keyring has no password for service {service!r}, user {username!r}",
                remedy=f"store it with: keyring set {service} {username}",
            )
        return Fetched(value)
