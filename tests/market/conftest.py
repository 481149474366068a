"""One anvil chain per module with the real Uniswap V2 (DUSD/DTKN, 1 DTKN = 0.5 DUSD), each
test on a snapshot of it; a Chainlink-style TestAggregator to deploy; a real HTTP price API
on 127.0.0.1 whose answers each test scripts."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from web3 import Web3

from defiagent.chain.anvil import Anvil
from defiagent.devchain.artifacts import compile_contract
from defiagent.devchain.deploy import UniswapV2Deployment, create_pool, deploy, deploy_uniswap_v2

# The agent fixtures (a deployed market, allowlist, start_agent) for test_agent_price_sane.
from tests.agent.conftest import allowlist, chain, cw3, market, start_agent  # noqa: F401

SOL = Path(__file__).parent / "sol"
FEED_DECIMALS = 8


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    with Anvil(log_dir=tmp_path_factory.mktemp("anvil")) as anvil:
        yield anvil


@pytest.fixture(scope="module")
def mw3(node) -> Web3:
    return Web3(Web3.HTTPProvider(node.url))


@pytest.fixture(scope="module")
def dex(mw3) -> UniswapV2Deployment:
    return create_pool(mw3, deploy_uniswap_v2(mw3), 10**24, 2 * 10**24)


@pytest.fixture(scope="module")
def aggregator_artifact():
    return compile_contract(SOL / "TestAggregator.sol", "TestAggregator")


@pytest.fixture
def fresh(mw3, dex):
    """The module's chain, reverted to this point after the test."""
    snap = mw3.provider.make_request("evm_snapshot", [])["result"]
    yield mw3
    mw3.provider.make_request("evm_revert", [snap])


class Feed:
    """A deployed TestAggregator and a way to set its round."""

    def __init__(self, w3: Web3, contract, sender: str) -> None:
        self.w3, self.contract, self.sender = w3, contract, sender
        self.address = contract.address

    def set(
        self,
        price: float,
        *,
        age: int = 0,
        round_id: int = 1,
        answered_in_round: int | None = None,
        updated_at: int | None = None,
        raw_answer: int | None = None,
    ) -> None:
        now = block_time(self.w3)
        answer = raw_answer if raw_answer is not None else round(price * 10**FEED_DECIMALS)
        tx = self.contract.functions.setRound(
            round_id,
            answer,
            updated_at if updated_at is not None else now - age,
            round_id if answered_in_round is None else answered_in_round,
        ).transact({"from": self.sender})
        self.w3.eth.wait_for_transaction_receipt(tx)


@pytest.fixture
def make_feed(fresh, dex, aggregator_artifact):
    def make(description: str = "DTKN / DUSD") -> Feed:
        c = deploy(fresh, aggregator_artifact, FEED_DECIMALS, description, sender=dex.deployer)
        return Feed(fresh, c, dex.deployer)

    return make


def block_time(w3: Web3) -> int:
    return int(w3.eth.get_block("latest")["timestamp"])


def advance(w3: Web3, seconds: int) -> None:
    w3.provider.make_request("evm_increaseTime", [seconds])
    w3.provider.make_request("evm_mine", [])


class PriceApi:
    """A real HTTP server: `answers[path] = (status, body bytes, delay seconds)`."""

    def __init__(self) -> None:
        self.answers: dict[str, tuple[int, bytes, float]] = {}
        self.requests: list[dict[str, str]] = []
        self.trickle: dict[str, float] = {}  # path -> seconds between bytes
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                api.requests.append({"path": self.path, **dict(self.headers)})
                status, body, delay = api.answers.get(self.path, (404, b"{}", 0))
                if delay:
                    time.sleep(delay)
                try:
                    self.send_response(status)
                    if status in (301, 302):
                        self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if api.trickle.get(self.path):
                        for i in range(len(body)):  # one byte at a time, each in time
                            self.wfile.write(body[i : i + 1])
                            self.wfile.flush()
                            time.sleep(api.trickle[self.path])
                    else:
                        self.wfile.write(body)
                except OSError:  # the client gave up (timeout test)
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, path: str, payload, *, status: int = 200, delay: float = 0) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.answers[path] = (status, body, delay)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def price_api():
    api = PriceApi()
    yield api
    api.close()
