"""A Sourcify client (API v2, `GET /v2/contract/{chainId}/{address}`), cached on disk.

What Sourcify returns is never trusted as such: the sources are recompiled here and
compared with the code on chain, so a wrong or poisoned answer (or cache) can only
produce a mismatch, never a false match.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import requests
from eth_utils import to_checksum_address

from defiagent.cache import cache_dir
from defiagent.errors import InfraError
from defiagent.vetting.bundle import CompilerSettings, SourceBundle, bundle_from_metadata

DEFAULT_URL = "https://sourcify.dev/server"
FIELDS = "sources,compilation,metadata"


class SourcifyClient:
    def __init__(
        self,
        base_url: str | None = None,
        *,
        session: requests.Session | None = None,
        timeout: float = 20.0,
        use_cache: bool = True,
    ) -> None:
        self.base_url = (
            base_url or os.environ.get("DEFIAGENT_SOURCIFY_URL") or DEFAULT_URL
        ).rstrip("/")
        self.session = session or requests.Session()
        self.timeout = timeout
        self.use_cache = use_cache

    def _cache_path(self, chain_id: int, address: str):
        # Keyed by server too: one server's answer must never stand in for another's.
        server = hashlib.sha256(self.base_url.encode()).hexdigest()[:16]
        folder = cache_dir("sourcify", server, str(chain_id))
        return folder / f"{to_checksum_address(address)}.json"

    def contract(self, chain_id: int, address: str) -> dict[str, Any] | None:
        """Sourcify's JSON for a verified contract; None when it is not verified there."""
        address = to_checksum_address(address)
        cached = self._cache_path(chain_id, address)
        if self.use_cache and cached.is_file():
            return json.loads(cached.read_text())
        url = f"{self.base_url}/v2/contract/{chain_id}/{address}"
        try:
            response = self.session.get(url, params={"fields": FIELDS}, timeout=self.timeout)
        except requests.RequestException as exc:
            raise InfraError(f"Sourcify at {self.base_url} did not answer: {exc}") from exc
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise InfraError(f"Sourcify answered HTTP {response.status_code} for {address}")
        try:
            body = response.json()
        except ValueError as exc:
            raise InfraError(f"Sourcify sent a non-JSON answer for {address}") from exc
        if not isinstance(body, dict) or not body.get("match"):
            return None
        if self.use_cache:
            tmp = cached.with_suffix(".tmp")
            tmp.write_text(json.dumps(body))
            tmp.replace(cached)
        return body

    def bundle(self, chain_id: int, address: str) -> SourceBundle | None:
        body = self.contract(chain_id, address)
        if body is None:
            return None
        try:
            return bundle_from_sourcify(
                body, origin=f"sourcify:{chain_id}/{to_checksum_address(address)}"
            )
        except (KeyError, TypeError, AttributeError, ValueError) as exc:  # its shape, not ours
            detail = " ".join(str(exc).split())[:120]
            raise InfraError(
                f"Sourcify at {self.base_url} sent an answer for {address} that is not a "
                f"contract's sources ({type(exc).__name__}: {detail})"
            ) from exc


def bundle_from_sourcify(body: dict[str, Any], *, origin: str = "sourcify") -> SourceBundle:
    sources = {unit: info["content"] for unit, info in (body.get("sources") or {}).items()}
    metadata = body.get("metadata")
    if isinstance(metadata, str):
        metadata = json.loads(metadata)
    if metadata:
        bundle = bundle_from_metadata(metadata, contents=sources)
        return bundle.model_copy(update={"origin": origin})
    compilation = body.get("compilation") or {}
    target = compilation.get("fullyQualifiedName")
    settings = dict(compilation.get("compilerSettings") or {})
    settings.pop("compilationTarget", None)
    return SourceBundle(
        sources=sources,
        roots=[target.rsplit(":", 1)[0]] if target else list(sources),
        settings=CompilerSettings.from_standard(settings, compilation.get("compilerVersion")),
        target=target,
        origin=origin,
    )
