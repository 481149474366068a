"""The TLS rule for every remote endpoint: https with certificate verification.

RPC, price API, alert webhook, model and vault endpoints must be `https://`; plain
`http://` is allowed only to a loopback address (127.0.0.0/8, ::1, localhost), where no
network sees the traffic. Verification is never turned off: the only knob is an extra CA
bundle (`[tls] ca_bundle`, or a per-service `ca_bundle`) for a private CA.

Checked when the config is read (literal URLs) and again at start on every URL a secret
reference resolved to; a refusal is one sentence and exit 2.
"""

from __future__ import annotations

import ipaddress
import ssl
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from defiagent.errors import ConfigError


class TlsConfig(BaseModel):
    """`[tls]`: an extra CA bundle trusted for every https endpoint (verification stays on)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ca_bundle: Path | None = Field(default=None, description="PEM file of extra trusted CAs")


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def tls_problem(url: str) -> str | None:
    """Why `url` breaks the TLS rule, in words that never quote its path or query; None if ok."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (a bad port raises here)
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("https", "http"):
        return f"uses {parts.scheme or 'no'} scheme: only https (http on loopback) is allowed"
    if not parts.hostname:
        return "has no host"
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        return f"is plain http to {parts.hostname}, which is not loopback: use https"
    return None


def require_secure_url(url: str) -> str:
    """For pydantic validators: the URL unchanged, or ValueError with the reason."""
    problem = tls_problem(url)
    if problem:
        raise ValueError(problem)
    return url


def check_secure_url(url: str, *, what: str) -> str:
    """At start, on a resolved URL: the URL unchanged, or ConfigError (exit 2) naming `what`."""
    problem = tls_problem(url)
    if problem:
        raise ConfigError(f"{what} {problem}", remedy="see docs/secrets.md, the TLS rule")
    return url


_ca_bundle: Path | None = None


def set_ca_bundle(path: Path | None) -> None:
    """The process-wide extra CA bundle, from `[tls] ca_bundle`, set at start."""
    global _ca_bundle
    _ca_bundle = path


def verify(ca_bundle: Path | None = None) -> bool | str:
    """The `verify=` for requests/hvac/botocore: a CA bundle path, else True (never False)."""
    bundle = ca_bundle or _ca_bundle
    return str(bundle) if bundle is not None else True


def ssl_context() -> ssl.SSLContext:
    """A verifying client context for http.client: the system store plus the CA bundle."""
    context = ssl.create_default_context()
    if _ca_bundle is not None:
        context.load_verify_locations(cafile=str(_ca_bundle))
    return context
