"""A quorum of RPC providers: a second provider that reports other reserves (a lying node,
here a real proxy in front of the same chain that rewrites getReserves answers) stops the
tick before anything is planned; an honest second provider lets it run."""

from __future__ import annotations

import json
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from defiagent.errors import ConfigError
from tests.agent.test_approvals_left import SellOnce

pytestmark = pytest.mark.slow
GET_RESERVES = "0x0902f1ac"


class Provider:
    """A JSON-RPC proxy in front of `upstream`; with `lie`, getReserves answers are halved."""

    def __init__(self, upstream: str, *, lie: bool = False) -> None:
        self.upstream, self.lie, self.requests = upstream, lie, 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests += 1
                req = urllib.request.Request(  # noqa: S310 (our own loopback anvil)
                    outer.upstream, body, {"Content-Type": "application/json"}
                )
                with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 (loopback)
                    answer = json.loads(resp.read())
                if outer.lie:
                    answer = outer._rewrite(json.loads(body), answer)
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @staticmethod
    def _rewrite(request, answer):
        pairs = (
            zip(request, answer, strict=True) if isinstance(request, list) else [(request, answer)]
        )
        for req, ans in pairs:
            params = req.get("params") or [{}]
            if req.get("method") == "eth_call" and params[0].get("data", "")[:10] == GET_RESERVES:
                word = ans["result"][2:]
                r0 = int(word[:64], 16) // 2
                ans["result"] = "0x" + f"{r0:064x}" + word[64:]
        return answer

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def provider(chain):
    made = []

    def make(**kw) -> Provider:
        p = Provider(chain.url, **kw)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def test_an_honest_second_provider_lets_the_tick_run(start_agent, market, provider):
    honest = provider()
    runtime = start_agent([SellOnce(market)], rpc_urls=[honest.url])
    report = runtime.agent.tick()
    assert report.skipped is None
    (sell,) = report.intents
    assert sell.status == "executed"
    assert honest.requests > 0  # it was asked


def test_a_provider_lying_about_reserves_skips_the_tick(start_agent, cw3, market, signer, provider):
    liar = provider(lie=True)
    before = cw3.eth.get_transaction_count(signer.address)
    runtime = start_agent([SellOnce(market)], rpc_urls=[liar.url])
    report = runtime.agent.tick()
    assert report.skipped is not None
    assert "only 1 of the required 2 RPC providers agree" in report.skipped
    assert "disagrees on the reserves of" in report.skipped
    assert liar.url.split("//")[1] in report.skipped  # named by host:port only
    assert report.intents == []
    assert cw3.eth.get_transaction_count(signer.address) == before


def test_a_quorum_that_cannot_be_met_is_a_config_error(market, chain, tmp_path):
    from defiagent.agent.demo import demo_config

    cfg = demo_config(
        market, rpc_url=chain.url, workdir=tmp_path, signer_table={"backend": "ledger"}
    )
    data = cfg.model_dump(mode="json") | {"rpc_urls": ["http://127.0.0.1:1"], "rpc_quorum": 3}
    from defiagent.config import parse_config

    with pytest.raises(ConfigError, match="rpc_quorum is 3 but only 2 providers"):
        parse_config(data)
    with pytest.raises(ConfigError, match="cannot vouch for itself"):
        parse_config(data | {"rpc_urls": [chain.url], "rpc_quorum": 2})
