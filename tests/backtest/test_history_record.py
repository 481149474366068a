"""`market record`: pool history read from a local anvil where scripted traders made it.

Checked against the chain itself: every tick's reserves are the pair's getReserves at that
block, and the TWAP accumulators the history derives are exactly the pair's own
price0/1CumulativeLast. A node that refuses large log ranges is met by splitting them."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pyarrow.parquet as pq
import pytest
import requests
from web3 import Web3

from defiagent.agent.devnet import deploy_market
from defiagent.chain.anvil import Anvil
from defiagent.cli.app import main
from defiagent.errors import ConfigError, InfraError
from defiagent.market.history import MarketHistory, record
from defiagent.market.reader import ChainReader
from tests.backtest.support_engine import make_history

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("backtest-history-chain")]


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    with Anvil(log_dir=tmp_path_factory.mktemp("history-chain")) as node:
        w3 = Web3(Web3.HTTPProvider(node.url))
        market = deploy_market(w3)
        first, last = make_history(w3, market, 30, seed=11)
        yield {"url": node.url, "w3": w3, "market": market, "first": first, "last": last}


class _LimitedNode:
    """A faithful stand-in for a hosted RPC's log limit: eth_getLogs over more than
    `max_blocks` blocks is answered with the JSON-RPC error such providers send; the rest
    is forwarded to the real node."""

    def __init__(self, upstream: str, max_blocks: int) -> None:
        limit = max_blocks

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                calls = body if isinstance(body, list) else [body]
                wide = [
                    c
                    for c in calls
                    if c.get("method") == "eth_getLogs"
                    and int(c["params"][0]["toBlock"], 16)
                    - int(c["params"][0]["fromBlock"], 16)
                    + 1
                    > limit
                ]
                if wide:
                    answer = {
                        "jsonrpc": "2.0",
                        "id": wide[0]["id"],
                        "error": {
                            "code": -32005,
                            "message": f"query exceeds max block range {limit}",
                        },
                    }
                    data = json.dumps(answer).encode()
                else:
                    data = requests.post(upstream, json=body, timeout=10).content
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.limit = limit
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_recorded_reserves_and_accumulators_match_the_chain(chain, tmp_path):
    m, w3 = chain["market"], chain["w3"]
    history = record(
        chain["url"], m.pools, chain["first"], chain["last"], tmp_path / "h", max_range=7
    )
    assert len(history) == chain["last"] - chain["first"] + 1  # one swap per block
    assert MarketHistory.load(tmp_path / "h").content_hash == history.content_hash
    pair = history.pools[m.dex.pair]
    weth_pair = history.pools[m.weth_pair]
    assert pair.start.codehash.startswith("0x")
    assert len(pair.start.codehash) == 66
    for i, block in enumerate(history.blocks):
        reader = ChainReader(w3, block)
        onchain = reader.pool(m.dex.pair)
        assert (pair.reserve0[i], pair.reserve1[i]) == (onchain.reserve0, onchain.reserve1)
        assert pair.timestamp_last[i] == onchain.block_timestamp_last
        # The accumulators derived from Sync events and block times are the pair's own.
        assert (pair.cumulative0[i], pair.cumulative1[i]) == reader.cumulative_prices(m.dex.pair)
        assert (weth_pair.cumulative0[i], weth_pair.cumulative1[i]) == reader.cumulative_prices(
            m.weth_pair
        )
        assert history.timestamps[i] == w3.eth.get_block(block)["timestamp"]


def test_a_node_that_refuses_wide_log_ranges_gets_them_split(chain, tmp_path):
    m = chain["market"]
    direct = record(chain["url"], m.pools, chain["first"], chain["last"], tmp_path / "direct")
    node = _LimitedNode(chain["url"], max_blocks=4)
    try:
        split = record(node.url, m.pools, chain["first"], chain["last"], tmp_path / "split")
        assert split.content_hash == direct.content_hash
        tight = _LimitedNode(chain["url"], max_blocks=0)  # refuses even one block
        try:
            with pytest.raises(InfraError, match=r"eth_getLogs for blocks .* failed"):
                record(tight.url, m.pools, chain["first"], chain["first"] + 3, tmp_path / "x")
        finally:
            tight.close()
    finally:
        node.close()
    assert not (tmp_path / "x").exists()  # nothing half-written


def test_cli_record_and_its_refusals(chain, tmp_path, capsys):
    m = chain["market"]
    base = ["market", "record", "--rpc-url", chain["url"], "--pools", m.dex.pair]
    rng = ["--from-block", str(chain["first"]), "--to-block", str(chain["last"])]
    assert main([*base, *rng, "--out", str(tmp_path / "ok"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"]
    assert doc["ticks"] == len(MarketHistory.load(tmp_path / "ok"))
    assert doc["pools"][0]["pair"] in ("DUSD/DTKN", "DTKN/DUSD")

    cases = [
        ([*base, *rng, "--out", str(tmp_path / "ok")], 2, "already holds a market history"),
        (
            [*base, "--from-block", "1", "--to-block", str(10**9), "--out", str(tmp_path / "a")],
            2,
            "past the chain's head",
        ),
        ([*base, "--from-block", "9", "--to-block", "3", "--out", str(tmp_path / "b")], 2, "empty"),
        (
            [
                "market",
                "record",
                "--rpc-url",
                chain["url"],
                "--pools",
                "0x123",
                *rng,
                "--out",
                str(tmp_path / "c"),
            ],
            2,
            "0x123",
        ),
        (
            [
                "market",
                "record",
                "--rpc-url",
                chain["url"],
                "--pools",
                m.dex.token_a,
                *rng,
                "--out",
                str(tmp_path / "d"),
            ],
            3,
            "cannot be read as a Uniswap V2 pair",
        ),
        (
            [
                "market",
                "record",
                "--rpc-url",
                "http://127.0.0.1:9",
                "--pools",
                m.dex.pair,
                *rng,
                "--out",
                str(tmp_path / "e"),
            ],
            3,
            "RPC",
        ),
    ]
    for argv, code, words in cases:
        assert main(argv) == code, argv
        err = capsys.readouterr().err
        assert words in err, err
        assert "Traceback" not in err


def test_a_tampered_or_damaged_history_is_noticed(chain, tmp_path):
    m = chain["market"]
    h = record(chain["url"], m.pools, chain["first"], chain["last"], tmp_path / "h")
    table = pq.read_table(tmp_path / "h" / "ticks.parquet")
    rows = table.to_pydict()
    rows["reserve0"][3] = str(int(rows["reserve0"][3]) + 1)  # one wei in one row
    import pyarrow as pa

    pq.write_table(pa.table(rows, schema=table.schema), tmp_path / "h" / "ticks.parquet")
    assert MarketHistory.load(tmp_path / "h").content_hash != h.content_hash
    (tmp_path / "h" / "ticks.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(ConfigError, match="not a readable Parquet file"):
        MarketHistory.load(tmp_path / "h")
    (tmp_path / "h" / "meta.json").unlink()
    with pytest.raises(ConfigError, match=r"has no meta\.json"):
        MarketHistory.load(tmp_path / "h")
