"""A secret reference: `scheme:body[#field]`, the only form a secret takes in a config.

env:NAME                      an environment variable
keyring:service/name          the OS keyring
vault:mount/path#field        HashiCorp Vault / OpenBao KV v2
aws-sm:secret-id#field        AWS Secrets Manager (field: a key of its JSON string)
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

SCHEMES = ("env", "keyring", "vault", "aws-sm")

_FORMS = {
    "env": re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$"),
    "keyring": re.compile(r"^[^/\s#]+/[^\s#]+$"),
    "vault": re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]*[A-Za-z0-9_.-](#[^\s#]+)?$"),
    # a name or an ARN (which has colons); the JSON field after '#'
    "aws-sm": re.compile(r"^[A-Za-z0-9/_+=.@:-]+(#[^\s#]+)?$"),
}
_HINTS = {
    "env": "env:NAME",
    "keyring": "keyring:service/name",
    "vault": "vault:mount/path#field",
    "aws-sm": "aws-sm:secret-id#field",
}
FORMS_TEXT = ", ".join(_HINTS.values())


class SecretRef(BaseModel):
    """A parsed reference; `str(ref)` gives it back as written."""

    model_config = ConfigDict(frozen=True)

    scheme: str
    body: str  # without the '#field'
    field: str | None = None

    def __str__(self) -> str:
        return f"{self.scheme}:{self.body}" + (f"#{self.field}" if self.field else "")


def looks_like_reference(text: str) -> bool:
    """True when `text` starts with a known scheme (then it must parse, or it is an error)."""
    scheme, sep, _ = text.partition(":")
    return bool(sep) and scheme in SCHEMES


def parse_reference(text: str) -> SecretRef:
    """The reference in `text`; ValueError with a sentence (never quoting `text`) if not one."""
    scheme, sep, rest = text.strip().partition(":")
    if not sep or scheme not in SCHEMES:
        raise ValueError(f"must be a secret reference ({FORMS_TEXT}), never the secret itself")
    if not _FORMS[scheme].match(rest):
        raise ValueError(f"a {scheme}: reference has the form {_HINTS[scheme]}")
    body, _, field = rest.partition("#") if scheme in ("vault", "aws-sm") else (rest, "", "")
    return SecretRef(scheme=scheme, body=body, field=field or None)


def check_reference(text: str) -> str:
    """For pydantic validators: the text unchanged if it is a reference, else ValueError."""
    parse_reference(text)
    return text
