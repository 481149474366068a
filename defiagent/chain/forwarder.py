"""Keep an RPC URL's credential inside the agent process: a loopback JSON-RPC forwarder.

Most RPC providers put the API key in the URL (`https://host/v3/KEY`, `?apikey=KEY`,
`https://user:KEY@host`). Handed to anvil as `--fork-url` it sits in anvil's command line,
which every local user reads in `ps` or /proc/PID/cmdline, and in the banner anvil writes
to its log file. Instead anvil forks `http://127.0.0.1:PORT`, an `RpcForwarder` in the
agent process that adds the credential on the way out: nothing secret is in anvil's
argv, its environment (see `Anvil`) or its logs.

What is forwarded: `POST /` with a JSON body (an object or a non-empty batch) of at most
`max_request_bytes`, from a process of this user (Linux: the owner of the peer socket,
from sock_diag, else /proc/net/tcp), so another local user cannot spend the key through
the forwarder either. Anything else is a 4xx. A 2xx answer comes back byte for byte;
anything else the upstream does (an HTTP error, no answer, a timeout, an answer over
`max_response_bytes`) becomes a JSON-RPC error with a 502/504 (429 stays 429) that names
the upstream by nothing but "the upstream RPC": no URL, no credential, and the upstream's
own error text is scrubbed of the credential before it is passed on. Nothing is logged.

Why the standard library: `ThreadingHTTPServer` with HTTP/1.1 keep-alive towards anvil
and a shared pool of kept-alive upstream connections (anvil opens a fresh connection pool
on every `anvil_reset`; the pool spares the provider a TLS handshake for each). Measured
on a local anvil upstream (2 shared cores): eth_blockNumber 0.24 ms direct, 0.55 ms
through the forwarder (p50, +0.3 ms per request); an `anvil_reset` ~14 -> ~18 ms; the
first simulation after a reset ~4.6 -> ~13 ms, as anvil then fires bursts of parallel
reads that the forwarder serves under one GIL. Against a remote provider (tens of ms a
round trip) that is noise, and a keyless local URL is never forwarded. aiohttp (already
installed through web3, with a C HTTP parser) could cut the per-request CPU, at the cost
of an event-loop thread and a direct dependency.

The URL helpers here (`redact_url`, `carries_credential`, `looks_like_credential`) are
what every message, log line and record uses to name an RPC: scheme and host only.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import re
import socket
import struct
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

MIB = 1024 * 1024
# Errors that mean a kept-alive upstream connection went stale before it read the request.
_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)
_UPSTREAM_ERROR = -32000  # JSON-RPC "server error" range: the request was fine, the upstream not


# ---- naming an RPC without its credential -----------------------------------------------


def redact_url(url: str) -> str:
    """Scheme, host and port only, with "/…" when anything (path, query, userinfo) was cut.

    The same cut as `AgentConfig.redacted()` applies to the config's RPC URLs."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return "(an unparseable URL)"
    if not parts.scheme or not host:
        return "(an unparseable URL)"
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return f"{parts.scheme}://{netloc}" + ("/…" if carries_credential(url) else "")


def carries_credential(url: str) -> bool:
    """True when the URL holds anything beyond scheme://host:port (a path other than "/",
    a query, a fragment, userinfo): any of them may be an API key."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return True
    return bool(
        parts.username is not None
        or parts.password is not None
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    )


_KEY_NAME = re.compile(r"key|token|secret|auth|pass|sig|cred|access", re.IGNORECASE)
_KEY_LIKE = re.compile(r"[A-Za-z0-9_\-]{16,}")


def looks_like_credential(url: str) -> bool:
    """A heuristic for warnings: userinfo, a query parameter named like a key, or a path
    segment or query value that looks like one (16+ letters/digits/-/_ with a digit)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return True
    if parts.username is not None or parts.password is not None:
        return True
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(_KEY_NAME.search(name) for name, _ in query):
        return True
    candidates = [unquote(s) for s in parts.path.split("/")] + [v for _, v in query]
    return any(_KEY_LIKE.fullmatch(c) and re.search(r"\d", c) for c in candidates)


def credential_fragments(url: str, *, min_length: int = 4) -> list[str]:
    """The parts of the URL that may be secret (userinfo, path and its segments, query and
    its values, fragment), raw and unquoted, longest first; for scrubbing text."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    found = {parts.username or "", parts.password or "", parts.query, parts.fragment}
    if parts.path not in ("", "/"):
        found.add(parts.path)
        found.update(parts.path.split("/"))
    found.update(v for _, v in parse_qsl(parts.query, keep_blank_values=True))
    found |= {unquote(f) for f in found}
    return sorted((f for f in found if len(f) >= min_length), key=len, reverse=True)


def scrub(text: str, fragments: list[str]) -> str:
    for fragment in fragments:
        text = text.replace(fragment, "…")
    return text


# ---- who is on the other end of a loopback connection ------------------------------------


def _hex_address(ip: str) -> str:
    """127.0.0.1 as /proc/net/tcp prints it (the raw 32-bit word in native byte order)."""
    return f"{struct.unpack('=I', socket.inet_aton(ip))[0]:08X}"


def peer_uid(table: str, client: tuple[str, int], server: tuple[str, int]) -> int | None:
    """The uid owning the client end of a loopback TCP connection, from /proc/net/tcp's
    text: the socket whose local end is `client` and remote end is `server`."""
    local = f"{_hex_address(client[0])}:{client[1]:04X}"
    remote = f"{_hex_address(server[0])}:{server[1]:04X}"
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 7 and fields[1] == local and fields[2] == remote:
            return int(fields[7])
    return None


_SOCK_DIAG_BY_FAMILY = 20
_NLMSG_ERROR = 2
_INET_DIAG_NOCOOKIE = 0xFFFFFFFF


def peer_uid_netlink(client: tuple[str, int], server: tuple[str, int]) -> int | None:
    """The same through sock_diag's exact-socket lookup (what `ss` uses): ~20 us, where
    /proc/net/tcp lists every socket on the host (~9 ms with a few thousand in TIME_WAIT).
    None when there is no such socket; OSError when netlink is not available."""
    family = getattr(socket, "AF_NETLINK", None)
    if family is None:
        raise OSError("no netlink here")
    sockid = struct.pack(
        "!HH16s16s",
        client[1],
        server[1],
        socket.inet_aton(client[0]).ljust(16, b"\0"),
        socket.inet_aton(server[0]).ljust(16, b"\0"),
    ) + struct.pack("=III", 0, _INET_DIAG_NOCOOKIE, _INET_DIAG_NOCOOKIE)
    # inet_diag_req_v2: family, protocol, ext, pad, states (all), then the socket id.
    request = struct.pack("=BBBBI", socket.AF_INET, socket.IPPROTO_TCP, 0, 0, 0xFFFFFFFF)
    request += sockid
    header = struct.pack("=IHHII", 16 + len(request), _SOCK_DIAG_BY_FAMILY, 1, 1, 0)
    with socket.socket(family, socket.SOCK_DGRAM, 4) as nl:  # 4: NETLINK_SOCK_DIAG
        nl.settimeout(1.0)
        nl.send(header + request)
        data = nl.recv(4096)
    _, kind = struct.unpack_from("=IH", data)
    if kind == _NLMSG_ERROR:
        (errno,) = struct.unpack_from("=i", data, 16)
        if errno == -2:  # ENOENT: no such socket
            return None
        raise OSError(-errno, "sock_diag lookup failed")
    if kind != _SOCK_DIAG_BY_FAMILY or len(data) < 16 + 72:
        raise OSError("unexpected sock_diag answer")
    # inet_diag_msg: family, state, timer, retrans, id (48 bytes), expires, rqueue, wqueue, uid
    return struct.unpack_from("=I", data, 16 + 64)[0]


def _same_user(client: tuple[str, int], server: tuple[str, int]) -> bool:
    try:
        uid = peer_uid_netlink(client, server)
    except OSError:
        try:
            with open("/proc/net/tcp") as fh:
                table = fh.read()
        except OSError:  # not Linux: nothing to check against
            return True
        uid = peer_uid(table, client, server)
    return uid == os.getuid()


# ---- the forwarder -------------------------------------------------------------------------


class _Refusal(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False
    forwarder: RpcForwarder

    def server_bind(self) -> None:
        # HTTPServer.server_bind would look the host name up (getfqdn): not needed here.
        TCPServer.server_bind(self)
        self.server_name, self.server_port = self._bound

    @property
    def _bound(self) -> tuple[str, int]:
        """(host, port) it listens on: once bound, getsockname()'s, with a str host."""
        host, port = self.server_address[:2]
        assert isinstance(host, str)
        return host, port

    def verify_request(self, request, client_address) -> bool:
        fw = self.forwarder
        if fw.same_user_only and not _same_user(client_address, self._bound):
            fw.refused_peers += 1
            return False
        return True

    def process_request(self, request, client_address) -> None:
        if not self.forwarder._slots.acquire(blocking=False):  # too many connections
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.forwarder._slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.forwarder._slots.release()

    def handle_error(self, request, client_address) -> None:
        return  # the default prints a traceback to stderr; nothing is ever printed here


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: anvil reuses its connections
    # Without TCP_NODELAY, Nagle's algorithm and the client's delayed ACK can hold a write
    # back ~40 ms (measured, when headers and body went out in two writes).
    disable_nagle_algorithm = True
    server: _Server
    # An idle kept-alive connection is dropped after this (anvil's pool drops idle ones
    # after 90 s itself); a request must arrive in full within it too.
    timeout = 120

    def setup(self) -> None:
        super().setup()
        self.server.forwarder._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.forwarder._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        return  # never log: not even the request line

    # -- what is refused ------------------------------------------------------------------
    def _method_not_allowed(self) -> None:
        self.close_connection = True
        self._send(405, _error_body(None, -32600, "only POST is served"), {"Allow": "POST"})

    do_GET = do_HEAD = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _method_not_allowed

    # -- the one thing that is served -------------------------------------------------------
    def do_POST(self) -> None:
        fw = self.server.forwarder
        payload: Any = None
        try:
            body = self._read_body(fw.max_request_bytes)
            try:
                payload = json.loads(body)
            except ValueError:
                raise _Refusal(400, -32700, "the body is not JSON") from None
            if not _is_jsonrpc(payload):
                raise _Refusal(400, -32600, "the body is not a JSON-RPC request or batch")
            status, data = fw._post_upstream(body)
        except _Refusal as refusal:
            self._send(refusal.status, _error_body(payload, refusal.code, refusal.message))
            return
        if 200 <= status < 300:
            fw.forwarded += 1
            self._send(200, data)
            return
        self._send(*fw._upstream_status_error(status, data, payload))

    def _read_body(self, limit: int) -> bytes:
        if self.path != "/":
            self.close_connection = True
            raise _Refusal(404, -32600, "only / is served")
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise _Refusal(411, -32600, "a Content-Length is required")
        if "json" not in self.headers.get("Content-Type", "").lower():
            self.close_connection = True
            raise _Refusal(415, -32600, "the body must be application/json")
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.close_connection = True
            raise _Refusal(411, -32600, "a Content-Length is required") from None
        if length < 0 or length > limit:
            self.close_connection = True  # the body is not read: the connection is spent
            raise _Refusal(413, -32600, f"the request is larger than {limit} bytes")
        body = self.rfile.read(length)
        if len(body) != length:
            self.close_connection = True
            raise _Refusal(400, -32600, "the request body ended early")
        return body

    def _send(self, status: int, data: bytes, headers: Mapping[str, str] | None = None) -> None:
        # Status line, headers and body in one write: one wake-up of the client, not two.
        lines = [
            f"{self.protocol_version} {status} {self.responses[status][0]}",
            "Content-Type: application/json",
            f"Content-Length: {len(data)}",
        ]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head if self.command == "HEAD" else head + data)


def _is_jsonrpc(payload: Any) -> bool:
    if isinstance(payload, dict):
        return True
    return isinstance(payload, list) and bool(payload) and all(isinstance(p, dict) for p in payload)


def _error_body(payload: Any, code: int, message: str) -> bytes:
    def one(request: Any) -> dict:
        rid = request.get("id") if isinstance(request, dict) else None
        return {"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message}}

    if isinstance(payload, list) and _is_jsonrpc(payload):  # a batch: one error per request
        return json.dumps([one(p) for p in payload]).encode()
    return json.dumps(one(payload)).encode()


class RpcForwarder:
    """A loopback JSON-RPC forwarder to one upstream URL. Use as a context manager, or
    start()/stop(); `url` is what to hand to anvil (`http://127.0.0.1:PORT`)."""

    def __init__(
        self,
        upstream_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        max_request_bytes: int = 4 * MIB,
        max_response_bytes: int = 64 * MIB,
        max_connections: int = 64,
        same_user_only: bool = True,
    ) -> None:
        parts = urlsplit(upstream_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{redact_url(upstream_url)} is not an http(s) URL")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if parts.username is not None:  # https://user:secret@host: basic auth
            token = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            self._headers["Authorization"] = "Basic " + base64.b64encode(token.encode()).decode()
        self._headers.update(headers or {})
        self._fragments = credential_fragments(upstream_url)
        self._fragments += sorted(
            (v for k, v in (headers or {}).items() if len(v) >= 4), key=len, reverse=True
        )
        self.upstream = redact_url(upstream_url)  # the only form of it ever shown
        self.timeout = timeout
        self.max_request_bytes = max_request_bytes
        self.max_response_bytes = max_response_bytes
        self.same_user_only = same_user_only
        self.forwarded = 0
        self.refused_peers = 0
        self._slots = threading.BoundedSemaphore(max_connections)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._idle: list[http.client.HTTPConnection] = []  # kept-alive upstream connections
        self._max_idle = max_connections
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        where = self.url if self._server else "stopped"
        return f"RpcForwarder({self.upstream} via {where})"

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the RPC forwarder is not running")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> RpcForwarder:
        if self._server is not None:
            return self
        server = _Server(("127.0.0.1", 0), _Handler)
        server.forwarder = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="rpc-forwarder"
        )
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:  # kept-alive clients: cut them, their threads end
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> RpcForwarder:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _track(self, connection: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    # -- upstream ------------------------------------------------------------------------------
    def _connect(self) -> http.client.HTTPConnection:
        if self._https:  # verified: the system store plus [tls] ca_bundle
            from defiagent.net.tls import ssl_context

            return http.client.HTTPSConnection(
                self._host, self._port, timeout=self.timeout, context=ssl_context()
            )
        return http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)

    def _checkout(self) -> http.client.HTTPConnection:
        """An idle kept-alive upstream connection, or a new one. Shared by all of anvil's
        connections: anvil opens a new pool on every anvil_reset, and a new TLS handshake
        with the provider per anvil connection would cost more than the forwarder."""
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._connect()

    def _checkin(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if self._server is not None and len(self._idle) < self._max_idle:
                self._idle.append(conn)
                return
        conn.close()

    def _post_upstream(self, body: bytes) -> tuple[int, bytes]:
        """(status, body) of the upstream's answer; _Refusal when there is none."""
        limit = self.max_response_bytes
        for attempt in (1, 2):
            # A pooled connection may have gone stale: the second attempt is a fresh one.
            conn = self._checkout() if attempt == 1 else self._connect()
            try:
                conn.request("POST", self._path, body=body, headers=self._headers)
                response = conn.getresponse()
                declared = response.getheader("Content-Length")
                if declared is not None and declared.isdigit() and int(declared) > limit:
                    conn.close()
                    raise _Refusal(502, _UPSTREAM_ERROR, _too_large(limit))
                data = response.read(limit + 1)
                if len(data) > limit:
                    conn.close()
                    raise _Refusal(502, _UPSTREAM_ERROR, _too_large(limit))
                if response.will_close:
                    conn.close()
                else:
                    self._checkin(conn)
                return response.status, data
            except _STALE:
                conn.close()
                if attempt == 2:
                    raise _Refusal(
                        502, _UPSTREAM_ERROR, _unreachable("it closed the connection")
                    ) from None
            except TimeoutError:
                conn.close()
                raise _Refusal(
                    504,
                    _UPSTREAM_ERROR,
                    f"the upstream RPC did not answer within {self.timeout:g}s",
                ) from None
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                reason = getattr(exc, "strerror", None) or type(exc).__name__
                raise _Refusal(
                    502, _UPSTREAM_ERROR, _unreachable(scrub(reason, self._fragments))
                ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _upstream_status_error(self, status: int, data: bytes, payload: Any) -> tuple[int, bytes]:
        """An upstream HTTP error as a JSON-RPC error: its own JSON-RPC error message, if it
        sent one, scrubbed of the credential; the body itself is never passed on."""
        message = f"the upstream RPC answered HTTP {status}"
        code = _UPSTREAM_ERROR
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            error = json.loads(data).get("error")
            if isinstance(error, dict) and isinstance(error.get("message"), str):
                message += f": {scrub(error['message'], self._fragments)[:300]}"
                code = error["code"] if isinstance(error.get("code"), int) else code
        return (429 if status == 429 else 502), _error_body(payload, code, message)


def _unreachable(reason: str) -> str:
    return f"the upstream RPC did not answer ({reason})"


def _too_large(limit: int) -> str:
    return f"the upstream RPC's answer is larger than {limit} bytes"
