"""What every secret source implements: read one reference, say how long the value holds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from defiagent.secrets.reference import SecretRef


@dataclass(frozen=True)
class Fetched:
    value: str
    ttl_seconds: float | None = None  # a lease: re-read after this; None = until SIGHUP
    cache: bool = True  # False: read from the source on every use (the environment)


class SecretSource(Protocol):
    scheme: str

    def read(self, ref: SecretRef) -> Fetched:
        """The value, or SecretUnavailable naming the reference (never a value)."""
        ...


def pick_field(data: object, ref: SecretRef, *, where: str) -> str:
    """`#field` of a JSON object (or its only value when no field is given)."""
    from defiagent.secrets.errors import SecretUnavailable

    if not isinstance(data, dict):
        raise SecretUnavailable(f"the secret {ref} is not a JSON object in {where}")
    if ref.field is None:
        if len(data) != 1:
            raise SecretUnavailable(
                f"the secret {ref} has {len(data)} fields in {where}: name one with #field"
            )
        (value,) = data.values()
    elif ref.field not in data:
        raise SecretUnavailable(f"the secret {ref} has no field {ref.field!r} in {where}")
    else:
        value = data[ref.field]
    if not isinstance(value, str) or not value:
        raise SecretUnavailable(f"the secret {ref} is empty or not text in {where}")
    return value
