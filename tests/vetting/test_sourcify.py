"""The Sourcify client against a real HTTP server on 127.0.0.1 speaking Sourcify's v2 API."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from defiagent.allowlist.policy import Policy
from defiagent.errors import InfraError
from defiagent.vetting.sourcify import SourcifyClient
from defiagent.vetting.vet import vet_address
from tests.allowlist.support import uniswap_bundle


class FakeSourcify:
    """GET /v2/contract/{chainId}/{address}?fields=...: 200 with the contract, 404 otherwise."""

    def __init__(self) -> None:
        self.contracts: dict[tuple[int, str], dict] = {}
        self.requests: list[str] = []
        self.fail_with: int | None = None
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append(self.path)
                url = urlparse(self.path)
                parts = url.path.strip("/").split("/")
                if outer.fail_with:
                    return self._send(outer.fail_with, {"message": "internal error"})
                if len(parts) != 4 or parts[:2] != ["v2", "contract"]:
                    return self._send(404, {"customCode": "route_not_found", "message": "no route"})
                body = outer.contracts.get((int(parts[2]), parts[3].lower()))
                if body is None:
                    return self._send(
                        404, {"customCode": "not_found", "message": "Contract not found"}
                    )
                fields = parse_qs(url.query).get("fields", [""])[0].split(",")
                base = {
                    k: body[k]
                    for k in ("match", "creationMatch", "runtimeMatch", "chainId", "address")
                }
                base.update({f: body[f] for f in fields if f in body})
                return self._send(200, base)

            def _send(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def add(self, chain_id: int, address: str, bundle) -> None:
        _unit, name = bundle.target.split(":")
        self.contracts[(chain_id, address.lower())] = {
            "match": "exact_match",
            "creationMatch": "exact_match",
            "runtimeMatch": "exact_match",
            "chainId": str(chain_id),
            "address": address,
            "sources": {u: {"content": t} for u, t in bundle.sources.items()},
            "compilation": {
                "language": "Solidity",
                "compiler": "solc",
                "compilerVersion": f"{bundle.settings.version}+commit.00000000",
                "compilerSettings": bundle.settings.standard_settings(["abi"]),
                "name": name,
                "fullyQualifiedName": bundle.target,
            },
        }


@pytest.fixture
def sourcify():
    fake = FakeSourcify()
    fake.thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


@pytest.mark.slow
def test_vet_with_sources_from_sourcify_and_its_cache(sourcify, uniswap, anvil):
    pair = uniswap_bundle("pair")
    sourcify.add(uniswap.chain_id, uniswap.pair, pair)
    client = SourcifyClient(sourcify.url)
    vetting = vet_address(anvil.url, uniswap.pair, policy=Policy(), sourcify=client)
    match = vetting.report.units[0].source_match
    assert match.level == "full"
    assert match.origin.startswith("sourcify:")
    assert vetting.report.slither is not None  # Slither ran on Sourcify's sources
    assert sourcify.requests[0].startswith(f"/v2/contract/{uniswap.chain_id}/")
    assert "fields=sources" in sourcify.requests[0].replace("%2C", ",")
    # The answer is cached: a second vet asks the server nothing.
    vet_address(anvil.url, uniswap.pair, policy=Policy(), sourcify=client)
    assert len(sourcify.requests) == 1


def test_not_verified_is_none_and_vetting_fails_closed(
    sourcify, uniswap, anvil, tmp_path, monkeypatch
):
    # Nothing known about this code: no Slither result cached for its codehash by an earlier
    # vet (that reuse is by design, and would rightly pass here).
    monkeypatch.setenv("DEFIAGENT_CACHE_DIR", str(tmp_path / "empty-cache"))
    client = SourcifyClient(sourcify.url)
    assert client.bundle(uniswap.chain_id, uniswap.router) is None
    vetting = vet_address(anvil.url, uniswap.router, policy=Policy(), sourcify=client)
    by_check = {o.check: o for o in vetting.report.outcomes}
    assert by_check["source-match"].status == "fail"
    assert "no sources" in by_check["source-match"].reason
    assert by_check["slither-gate"].status == "fail"
    assert "Slither cannot run" in by_check["slither-gate"].reason


def test_a_lying_sourcify_gives_a_mismatch_never_a_match(sourcify, uniswap, anvil):
    sourcify.add(uniswap.chain_id, uniswap.router, uniswap_bundle("pair"))  # the pair's sources
    vetting = vet_address(
        anvil.url, uniswap.router, policy=Policy(), sourcify=SourcifyClient(sourcify.url)
    )
    assert vetting.report.units[0].source_match.level == "mismatch"
    assert not vetting.report.passed


def test_server_errors_and_unreachable_server_are_infrastructure_errors(sourcify, uniswap):
    sourcify.fail_with = 500
    with pytest.raises(InfraError, match="HTTP 500"):
        SourcifyClient(sourcify.url, use_cache=False).contract(1, uniswap.router)
    sourcify.server.shutdown()
    sourcify.server.server_close()
    with pytest.raises(InfraError, match="did not answer"):
        SourcifyClient(sourcify.url, use_cache=False, timeout=2).contract(1, uniswap.router)
