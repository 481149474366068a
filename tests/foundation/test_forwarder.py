"""The loopback RPC forwarder that keeps an API key out of anvil's argv and logs, the URL
helpers every message uses to name an RPC, and the dry run's `--fork-url` references."""

from __future__ import annotations

import base64
import http.client
import json
import os
import secrets
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from defiagent.chain import forwarder as fwd
from defiagent.chain.anvil import Anvil
from defiagent.chain.forwarder import (
    RpcForwarder,
    carries_credential,
    looks_like_credential,
    peer_uid,
    redact_url,
)
from defiagent.cli.run import resolve_fork_url
from defiagent.errors import ConfigError
from defiagent.secrets import SecretUnavailable

SECRET = secrets.token_hex(16)


class Upstream:
    """A fake provider: answers each JSON-RPC request with what it saw (path, basic auth);
    `status`, `body`, `delay` change what it does."""

    def __init__(self) -> None:
        self.status = 200
        self.body: bytes | None = None
        self.delay = 0.0
        self.seen: list[tuple[str, str, bytes]] = []
        self.connections = 0
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                upstream.connections += 1

            def log_message(self, *args) -> None:
                return

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                upstream.seen.append((self.path, self.headers.get("Authorization", ""), raw))
                time.sleep(upstream.delay)
                data = upstream.body
                if data is None:
                    request = json.loads(raw)
                    answer = lambda r: {"jsonrpc": "2.0", "id": r["id"], "result": self.path}  # noqa: E731
                    out = (
                        [answer(r) for r in request]
                        if isinstance(request, list)
                        else answer(request)
                    )
                    data = json.dumps(out).encode()
                self.send_response(upstream.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def upstream():
    u = Upstream()
    yield u
    u.close()


@pytest.fixture(autouse=True)
def _nothing_printed_or_logged(capfd, caplog):
    """Whatever a test does, the forwarder prints and logs nothing with the key in it."""
    yield
    out, err = capfd.readouterr()
    assert SECRET not in out + err + caplog.text


def keyed(upstream: Upstream) -> str:
    return f"http://127.0.0.1:{upstream.port}/v3/{SECRET}?apikey={SECRET}"


def post(
    url: str,
    body: bytes,
    *,
    method: str = "POST",
    path: str = "/",
    headers: dict | None = None,
    conn: http.client.HTTPConnection | None = None,
) -> tuple[int, bytes]:
    host, port = url.removeprefix("http://").split(":")
    conn = conn or http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request(method, path, body=body, headers=headers or {"Content-Type": "application/json"})
    response = conn.getresponse()
    return response.status, response.read()


def rpc(method: str = "eth_chainId", rid: int = 1) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": []}).encode()


def test_forwards_requests_and_batches_to_the_keyed_url_on_kept_alive_connections(upstream):
    with RpcForwarder(keyed(upstream)) as forwarder:
        assert SECRET not in forwarder.url
        assert SECRET not in repr(forwarder)
        host, port = forwarder.url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        status, data = post(forwarder.url, rpc(rid=7), conn=conn)
        assert status == 200
        assert json.loads(data) == {
            "jsonrpc": "2.0",
            "id": 7,
            "result": f"/v3/{SECRET}?apikey={SECRET}",
        }
        batch = json.dumps([json.loads(rpc(rid=1)), json.loads(rpc("eth_blockNumber", 2))]).encode()
        status, data = post(forwarder.url, batch, conn=conn)
        assert status == 200
        assert [item["id"] for item in json.loads(data)] == [1, 2]
        assert [raw for _, _, raw in upstream.seen] == [rpc(rid=7), batch]  # byte for byte
        conn.close()
        assert post(forwarder.url, rpc())[0] == 200  # another client connection...
        assert upstream.connections == 1  # ...and still the one kept-alive upstream connection
        assert forwarder.forwarded == 3


def test_userinfo_becomes_basic_auth_and_extra_headers_are_added(upstream):
    url = f"http://apikey:{SECRET}@127.0.0.1:{upstream.port}"
    with RpcForwarder(url, headers={"X-Api-Key": SECRET}) as forwarder:
        assert post(forwarder.url, rpc())[0] == 200
    path, auth, _ = upstream.seen[0]
    assert path == "/"
    assert base64.b64decode(auth.removeprefix("Basic ")).decode() == f"apikey:{SECRET}"


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status"),
    [
        ("GET", "/", None, b"", 405),
        ("PUT", "/", None, rpc(), 405),
        ("POST", "/other", None, rpc(), 404),
        ("POST", "/", {"Content-Type": "text/plain"}, rpc(), 415),
        ("POST", "/", None, b"not json", 400),
        ("POST", "/", None, b'"a string"', 400),
        ("POST", "/", None, b"[]", 400),
        ("POST", "/", None, b"[1, 2]", 400),
    ],
)
def test_refuses_anything_but_a_json_rpc_post_to_root(
    upstream, method, path, headers, body, status
):
    with RpcForwarder(keyed(upstream)) as forwarder:
        got, data = post(forwarder.url, body, method=method, path=path, headers=headers)
    assert got == status
    assert "error" in json.loads(data)
    assert upstream.seen == []


def test_refuses_an_oversized_body_without_reading_it(upstream):
    with RpcForwarder(keyed(upstream), max_request_bytes=1000) as forwarder:
        port = int(forwarder.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            # Announces 10 MB, sends none of it: the answer must come at once.
            sock.sendall(
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 10000000\r\n\r\n"
            )
            answer = sock.recv(65536).decode()
        assert answer.startswith("HTTP/1.1 413")
        assert "Connection: close" in answer
        assert post(forwarder.url, b"[" + b"1," * 600 + b"1]")[0] == 413
        assert post(forwarder.url, rpc())[0] == 200  # a normal one still goes through
    assert len(upstream.seen) == 1


def test_upstream_down_is_a_json_rpc_error_without_the_url():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{dead_port}/v3/{SECRET}"
    with RpcForwarder(url) as forwarder:
        status, data = post(forwarder.url, rpc(rid=42))
        batch_status, batch = post(forwarder.url, b"[" + rpc(rid=1) + b"," + rpc(rid=2) + b"]")
    assert status == batch_status == 502
    answer = json.loads(data)
    assert answer["id"] == 42
    assert "the upstream RPC did not answer" in answer["error"]["message"]
    assert [item["id"] for item in json.loads(batch)] == [1, 2]
    for text in (data, batch):
        assert SECRET.encode() not in text
        assert str(dead_port).encode() not in text


def test_upstream_http_errors_are_passed_on_scrubbed(upstream):
    upstream.status = 401
    upstream.body = json.dumps(
        {"jsonrpc": "2.0", "id": 1, "error": {"code": -32001, "message": f"bad key {SECRET}"}}
    ).encode()
    with RpcForwarder(keyed(upstream)) as forwarder:
        status, data = post(forwarder.url, rpc())
        assert status == 502
        error = json.loads(data)["error"]
        assert error["message"].startswith("the upstream RPC answered HTTP 401: bad key")
        assert SECRET not in error["message"]
        upstream.status, upstream.body = 429, b"slow down"
        assert post(forwarder.url, rpc())[0] == 429  # rate limits stay rate limits
        upstream.status, upstream.body = 200, b"x" * 2000
        assert post(forwarder.url, rpc())[0] == 200
    with RpcForwarder(keyed(upstream), max_response_bytes=1000) as forwarder:
        status, data = post(forwarder.url, rpc())
    assert status == 502
    assert "larger than 1000 bytes" in json.loads(data)["error"]["message"]


def test_a_slow_upstream_times_out(upstream):
    upstream.delay = 1.0
    with RpcForwarder(keyed(upstream), timeout=0.2) as forwarder:
        status, data = post(forwarder.url, rpc())
    assert status == 504
    assert "did not answer within 0.2s" in json.loads(data)["error"]["message"]


def test_only_this_user_may_connect(upstream, monkeypatch):
    with RpcForwarder(keyed(upstream)) as forwarder:
        assert post(forwarder.url, rpc())[0] == 200  # we are this user
        monkeypatch.setattr(fwd.os, "getuid", lambda: 12345)  # now every peer is another user
        with pytest.raises((ConnectionError, http.client.HTTPException)):
            post(forwarder.url, rpc())
        assert forwarder.refused_peers == 1
    assert len(upstream.seen) == 1


def test_peer_uid_from_sock_diag_is_the_client_sockets_owner():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname()) as client:
            accepted, address = server.accept()
            with accepted:
                try:
                    uid = fwd.peer_uid_netlink(address, server.getsockname())
                except OSError:
                    pytest.skip("no sock_diag netlink here (the /proc/net/tcp path is used)")
                assert uid == os.getuid()
                assert fwd.peer_uid_netlink(("127.0.0.1", 1), server.getsockname()) is None
                assert client.getsockname() == address


def test_peer_uid_reads_the_client_end_of_the_connection():
    table = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid\n"
        "   0: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1000 0 1\n"
        "   1: 0100007F:C350 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1001 0 2\n"
    )
    local = fwd._hex_address("127.0.0.1")
    table = table.replace("0100007F", local)
    assert peer_uid(table, ("127.0.0.1", 0xC350), ("127.0.0.1", 0x1F90)) == 1001
    assert peer_uid(table, ("127.0.0.1", 0xC351), ("127.0.0.1", 0x1F90)) is None


def test_stop_cuts_kept_alive_connections(upstream):
    forwarder = RpcForwarder(keyed(upstream)).start()
    host, port = forwarder.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    assert post(forwarder.url, rpc(), conn=conn)[0] == 200
    forwarder.stop()
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        post(f"http://{host}:{port}", rpc(), conn=conn)


# ---- naming an RPC ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown", "credential", "key_like"),
    [
        ("http://127.0.0.1:8545", "http://127.0.0.1:8545", False, False),
        ("https://rpc.example.org/", "https://rpc.example.org", False, False),
        ("https://eth.llamarpc.com/eth", "https://eth.llamarpc.com/…", True, False),
        (f"https://mainnet.infura.io/v3/{SECRET}", "https://mainnet.infura.io/…", True, True),
        ("https://h.example/rpc?apikey=abc", "https://h.example/…", True, True),
        (f"https://user:{SECRET}@h.example:8443", "https://h.example:8443/…", True, True),
        ("http://[::1]:8545/x", "http://[::1]:8545/…", True, False),
        ("not a url", "(an unparseable URL)", False, False),
        ("http://h:notaport/", "(an unparseable URL)", False, False),
    ],
    # fixed ids: the key is random per process, and xdist workers must collect the same tests
    ids=[
        "loopback",
        "root",
        "path",
        "key-in-path",
        "key-in-query",
        "userinfo",
        "ipv6-path",
        "garbage",
        "bad-port",
    ],
)
def test_url_helpers(url, shown, credential, key_like):
    assert redact_url(url) == shown
    assert SECRET not in redact_url(url)
    if "://" in url and "notaport" not in url:
        assert carries_credential(url) is credential
    assert looks_like_credential(url) is key_like


def test_anvil_forwards_only_a_fork_url_that_may_carry_a_key():
    assert Anvil(fork_url=f"http://127.0.0.1:1/v3/{SECRET}").forward is True
    assert Anvil(fork_url="http://127.0.0.1:1").forward is False
    assert Anvil(fork_url="http://127.0.0.1:1", forward=True).forward is True


# ---- dry-run --fork-url ------------------------------------------------------------------


def test_fork_url_from_an_env_reference(monkeypatch, capfd):
    url = f"https://mainnet.example/v3/{SECRET}"
    monkeypatch.setenv("MY_RPC", url)
    assert resolve_fork_url("env:MY_RPC") == url
    assert capfd.readouterr().err == ""  # a reference is the right way: no warning
    monkeypatch.delenv("MY_RPC")
    with pytest.raises(SecretUnavailable, match="MY_RPC is not set"):
        resolve_fork_url("env:MY_RPC")
    monkeypatch.setenv("MY_RPC", f"ws://mainnet.example/{SECRET}")
    with pytest.raises(ConfigError, match="is not an http") as info:
        resolve_fork_url("env:MY_RPC")
    assert SECRET not in str(info.value)


def test_a_plain_fork_url_with_a_key_warns_in_one_line(capfd):
    url = f"https://mainnet.example/v3/{SECRET}"
    assert resolve_fork_url(url) == url
    err = capfd.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "ps" in err
    assert "env:NAME" in err
    assert "https://mainnet.example/…" in err
    assert resolve_fork_url("http://127.0.0.1:8545") == "http://127.0.0.1:8545"
    assert capfd.readouterr().err == ""
    with pytest.raises(ConfigError, match="is not an http"):
        resolve_fork_url("mainnet")
