"""The one error every secret source raises: a reference that gives no value (exit 3).

The message names the reference and why, never the value (there is none to name, and a
partial one, such as a JSON body, is never quoted either).
"""

from __future__ import annotations

from defiagent.errors import InfraError


class SecretUnavailable(InfraError):
    """A secret reference is missing, denied, or its source cannot be reached (exit 3)."""

    kind = "secret"
