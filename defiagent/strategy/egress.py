"""The only way out of a strategy's sandbox: an allowlisting proxy on a Unix socket.

A strategy runs in `bwrap --unshare-all`, a network namespace with nothing but loopback.
Its config may list endpoints (`network = ["https://api.openai.com"]`); this proxy, in the
agent process, is how it reaches exactly those and nothing else. Inside the sandbox
`defiagent.strategy.sandbox_init` relays a loopback TCP port to the Unix socket bound here
(the socket file is bind-mounted in) and points HTTP(S)_PROXY at that port.

Per client connection the proxy reads one request head (at most HEAD_LIMIT bytes, within
HEAD_TIMEOUT seconds) and decides once:

* `CONNECT host:port` is allowed only to a listed `https` endpoint (host compared lowercase
  and exactly; no wildcard, no IP literal standing in for a listed name). The proxy connects,
  answers `200 Connection established` and relays the (TLS) bytes both ways.
* an absolute-form plain-HTTP request (`GET http://127.0.0.1:8080/x HTTP/1.1`) is allowed only
  to a listed `http` endpoint (loopback only, see config.endpoint). The request line becomes
  origin-form, Proxy-* and hop-by-hop headers are dropped, Host is set to the target and
  `Connection: close` added, so the connection carries that one request to that one
  host:port; whatever else the client sends afterwards can only go there.
* anything else is answered `403 Forbidden` with a one-line reason, and closed.

Each decision is reported to `on_decision` as {"allowed", "host", "port", "method",
"reason"}: never a path, a query, a header or a body, since they may carry API keys.

Why no library: what is needed is a CONNECT/forward proxy with an allowlist, one request head
per connection and a byte relay: about three hundred lines of stdlib sockets and threads that
can be read in one sitting. A general proxy (mitmproxy, proxy.py, aiohttp) would bring a large
surface, its own parsing and config, and would still need this allowlist wrapped around it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import selectors
import socket
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import cast
from urllib.parse import urlsplit

from defiagent.strategy.config import endpoint

log = logging.getLogger(__name__)

HEAD_LIMIT = 16 * 1024  # bytes of one request head, request line and headers
HEAD_TIMEOUT = 10.0  # seconds to receive it
CHUNK = 64 * 1024
DRAIN_LIMIT = 256 * 1024  # what is read and dropped after a refusal, so the client sees it
DRAIN_TIMEOUT = 1.0
MAX_REFUSING = 32  # connections over max_connections told so at once; past it, just closed

_REQUEST_LINE = re.compile(r"([A-Z]{1,20}) ([\x21-\x7e]{1,8192}) (HTTP/1\.[01])")
_HEADER_NAME = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HOSTNAME = re.compile(r"[a-z0-9]([a-z0-9.-]{0,252}[a-z0-9])?")
_PORT = re.compile(r"[0-9]{1,5}")
# dropped from a forwarded request: the proxy's own, and those about this hop only
_HOP_BY_HOP = {b"connection", b"keep-alive", b"upgrade", b"host"}


class _Refused(Exception):
    """A request the proxy will not carry; reason is the one line the client and log see."""

    def __init__(self, reason: str, *, status: int = 403) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass
class _Request:
    method: str | None = None
    host: str | None = None
    port: int | None = None
    head: bytes = b""  # what is sent upstream first (empty for CONNECT)


class EgressProxy:
    """Listens on a Unix socket (mode 0600) and carries requests to the listed endpoints only."""

    def __init__(
        self,
        endpoints: list[str],
        socket_path: Path,
        *,
        on_decision: Callable[[dict], None] | None = None,
        connect_timeout: float = 5.0,
        idle_timeout: float = 120.0,
        max_connections: int = 16,
    ) -> None:
        self.socket_path = Path(socket_path)
        self.on_decision = on_decision
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self._allowed: dict[str, set[tuple[str, int]]] = {"http": set(), "https": set()}
        for url in endpoints:
            scheme, host, port = endpoint(url)  # ValueError with a sentence if not one
            self._allowed[scheme].add((host, port))
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._listener: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._handlers: set[threading.Thread] = set()
        self._sockets: set[socket.socket] = set()
        self._active = 0  # connections being served
        self._refusing = 0  # connections over the limit being told so

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> EgressProxy:
        if self._listener is not None:
            raise RuntimeError("egress proxy already started")
        path = self.socket_path
        if len(os.fsencode(path)) >= 108:
            raise ValueError(f"socket path {path} is too long for a Unix socket (108 bytes)")
        if path.is_symlink() or path.exists():
            if not stat.S_ISSOCK(path.lstat().st_mode):
                raise FileExistsError(f"{path} exists and is not a socket")
            path.unlink()  # a stale socket from an earlier run
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # Linux creates the socket file with the socket inode's mode (less the umask):
            # set it before bind so the file is never reachable by others, then again after.
            os.fchmod(listener.fileno(), 0o600)
            listener.bind(str(path))
            os.chmod(path, 0o600)
            listener.listen(max(8, self.max_connections * 2))
        except BaseException:
            listener.close()
            raise
        self._listener = listener
        self._wake_r, self._wake_w = socket.socketpair()
        self._closing.clear()
        self._accept_thread = threading.Thread(
            target=self._accept_loop,
            args=(listener, self._wake_r),
            name="egress-accept",
            daemon=True,
        )
        self._accept_thread.start()
        return self

    def close(self) -> None:
        if self._listener is None:
            return
        self._closing.set()
        if self._wake_w is not None:
            with contextlib.suppress(OSError):
                self._wake_w.send(b"x")
        if self._accept_thread is not None:
            self._accept_thread.join(timeout=5)
        with self._lock:
            sockets = list(self._sockets)
            handlers = list(self._handlers)
        for s in sockets:  # wakes every relay and head read at once
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        for t in handlers:
            t.join(timeout=5)
        for own in (self._listener, self._wake_r, self._wake_w):
            if own is not None:
                own.close()
        self._listener = self._wake_r = self._wake_w = None
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(self.socket_path.lstat().st_mode):
                self.socket_path.unlink()

    def __enter__(self) -> EgressProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- accepting ----------------------------------------------------------------------

    def _accept_loop(self, listener: socket.socket, wake: socket.socket) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(listener, selectors.EVENT_READ)
            sel.register(wake, selectors.EVENT_READ)
            while not self._closing.is_set():
                ready = sel.select()
                if self._closing.is_set():
                    return
                if not any(key.fileobj is listener for key, _ in ready):
                    continue
                try:
                    client, _ = listener.accept()
                except OSError:
                    continue
                with self._lock:
                    if self._active < self.max_connections:
                        self._active += 1
                        over = False
                    elif self._refusing < MAX_REFUSING:
                        self._refusing += 1  # told why in a thread: a refusal drains input
                        over = True
                    else:  # a flood: not even an answer
                        self._decide(False, _Request(), "too many connections")
                        client.close()
                        continue
                    self._sockets.add(client)
                    t = threading.Thread(
                        target=self._serve, args=(client, over), name="egress-conn", daemon=True
                    )
                    self._handlers.add(t)
                t.start()

    def _serve(self, client: socket.socket, over: bool) -> None:
        upstream: socket.socket | None = None
        try:
            if over:
                self._decide(False, _Request(), "too many connections")
                self._refuse(client, _Refused("too many connections"))
            else:
                upstream = self._handle(client)
        except Exception:  # a bug must not take the proxy down; the client is closed below
            log.exception("egress proxy: connection failed")
        finally:
            for s in (client, upstream):
                if s is not None:
                    s.close()
            with self._lock:
                self._sockets.discard(client)
                if upstream is not None:
                    self._sockets.discard(upstream)
                if over:
                    self._refusing -= 1
                else:
                    self._active -= 1
                self._handlers.discard(threading.current_thread())

    # --- one connection -----------------------------------------------------------------

    def _handle(self, client: socket.socket) -> socket.socket | None:
        request = _Request()
        try:
            head, rest = self._read_head(client)
            self._parse(head, request)
        except _Refused as refused:
            self._decide(False, request, refused.reason)
            self._refuse(client, refused)
            return None
        if request.host is None or request.port is None:  # _parse allowed nothing else
            raise RuntimeError("egress proxy: allowed request without a destination")
        try:
            upstream = socket.create_connection(
                (request.host, request.port), timeout=self.connect_timeout
            )
        except OSError as e:
            self._decide(True, request, f"allowed, but upstream unreachable ({type(e).__name__})")
            self._refuse(client, _Refused("upstream unreachable", status=502))
            return None
        with self._lock:
            self._sockets.add(upstream)
        if self._closing.is_set():
            return upstream
        self._decide(True, request, "allowed")
        try:
            if request.method == "CONNECT":
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                upstream.sendall(request.head)
            if rest:
                upstream.sendall(rest)
            self._relay(client, upstream)
        except OSError:
            pass  # either side went away: both are closed by the caller
        return upstream

    def _read_head(self, client: socket.socket) -> tuple[bytes, bytes]:
        """The request head (through the blank line) and any bytes that came after it."""
        deadline = time.monotonic() + HEAD_TIMEOUT
        buf = bytearray()
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                if end + 4 > HEAD_LIMIT:
                    raise _Refused(f"request head over {HEAD_LIMIT} bytes")
                return bytes(buf[: end + 4]), bytes(buf[end + 4 :])
            if len(buf) >= HEAD_LIMIT:
                raise _Refused(f"request head over {HEAD_LIMIT} bytes")
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._closing.is_set():
                raise _Refused("no complete request head in time")
            client.settimeout(remaining)
            try:
                chunk = client.recv(HEAD_LIMIT + 4 - len(buf))
            except TimeoutError:
                raise _Refused("no complete request head in time") from None
            except OSError:
                chunk = b""
            if not chunk:
                raise _Refused("closed before a complete request head")
            buf += chunk

    def _parse(self, head: bytes, request: _Request) -> None:
        """Fills request from one head (as far as it gets), or raises _Refused saying why."""
        line, _, headers = head[:-4].partition(b"\r\n")
        m = _REQUEST_LINE.fullmatch(line.decode("latin-1"))
        if m is None:
            raise _Refused("malformed request line")
        method, target, version = m.groups()
        request.method = method
        if method == "CONNECT":
            request.host, request.port = host, port = _authority(target)
            if (host, port) not in self._allowed["https"]:
                raise _Refused(f"{_where(host, port)} is not an allowed https endpoint")
            return
        if target.startswith("/") or target == "*":
            raise _Refused("not a proxy request (origin-form): use an absolute http:// URL")
        parts = urlsplit(target)
        scheme = parts.scheme.lower()
        if scheme == "https":
            raise _Refused("https goes through CONNECT")
        if scheme != "http" or not parts.netloc:
            raise _Refused("only absolute http:// URLs and CONNECT are proxied")
        if "@" in parts.netloc:
            raise _Refused("credentials in the URL are refused")
        request.host, request.port = host, port = _authority(parts.netloc, default_port=80)
        if (host, port) not in self._allowed["http"]:
            raise _Refused(f"{_where(host, port)} is not an allowed http endpoint")
        origin = parts.path or "/"
        if parts.query:
            origin += "?" + parts.query
        out = [f"{method} {origin} {version}".encode("latin-1")]
        out.append(b"Host: " + _host_header(host, port).encode("ascii"))
        kept = headers.split(b"\r\n") if headers else []
        listed = set()  # headers named in Connection: also about this hop only
        for h in kept:
            name, sep, value = h.partition(b":")
            if not sep or not _HEADER_NAME.fullmatch(name):
                raise _Refused("malformed header line")
            if name.lower() == b"connection":
                listed |= {t.strip().lower() for t in value.split(b",")}
        for h in kept:
            name = h.partition(b":")[0].lower()
            if name.startswith(b"proxy-") or name in _HOP_BY_HOP or name in listed:
                continue
            out.append(h)
        out.append(b"Connection: close")
        request.head = b"\r\n".join(out) + b"\r\n\r\n"

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        """Bytes both ways until upstream closes, an error, or idle_timeout without any."""
        client.settimeout(self.idle_timeout)  # bounds a sendall to a peer that stops reading
        upstream.settimeout(self.idle_timeout)
        with selectors.DefaultSelector() as sel:
            sel.register(client, selectors.EVENT_READ, upstream)
            sel.register(upstream, selectors.EVENT_READ, client)
            while not self._closing.is_set():
                ready = sel.select(timeout=self.idle_timeout)
                if not ready:
                    return  # idle
                for key, _ in ready:
                    src = cast(socket.socket, key.fileobj)  # one of the two registered above
                    dst: socket.socket = key.data
                    data = src.recv(CHUNK)
                    if data:
                        dst.sendall(data)
                    elif src is upstream:
                        return  # nothing more can come back: done
                    else:
                        # the client half-closed: pass it on, keep relaying the answer
                        sel.unregister(client)
                        upstream.shutdown(socket.SHUT_WR)

    # --- answers and the record ---------------------------------------------------------

    def _refuse(self, client: socket.socket, refused: _Refused) -> None:
        """Answer, then read and drop what the client is still sending so it sees the answer."""
        client.settimeout(DRAIN_TIMEOUT)
        if not self._answer(client, refused.status, refused.reason):
            return
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + DRAIN_TIMEOUT
            drained = 0
            while drained < DRAIN_LIMIT and time.monotonic() < deadline:
                chunk = client.recv(CHUNK)
                if not chunk:
                    break
                drained += len(chunk)

    @staticmethod
    def _answer(client: socket.socket, status: int, reason: str) -> bool:
        title = {403: "Forbidden", 502: "Bad Gateway"}.get(status, "Error")
        body = f"defiagent egress: {reason}\n".encode()
        head = (
            f"HTTP/1.1 {status} {title}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        try:
            client.sendall(head + body)
        except OSError:
            return False
        return True

    def _decide(self, allowed: bool, request: _Request, reason: str) -> None:
        record = {
            "allowed": allowed,
            "host": request.host,
            "port": request.port,
            "method": request.method,
            "reason": reason,
        }
        if allowed:
            log.info("egress allowed: %s %s:%s", request.method, request.host, request.port)
        else:
            log.warning(
                "egress refused: %s %s:%s: %s", request.method, request.host, request.port, reason
            )
        if self.on_decision is not None:
            try:
                self.on_decision(record)
            except Exception:
                log.exception("egress proxy: on_decision failed")


def _authority(text: str, *, default_port: int | None = None) -> tuple[str, int]:
    """(lowercase host, port) of `host:port` or `[v6]:port`; _Refused if it is not one."""
    if text.startswith("["):
        host, sep, tail = text[1:].partition("]")
        if not sep or not host or not re.fullmatch(r"[0-9a-fA-F:.]{2,45}", host):
            raise _Refused("malformed host")
        if tail and not tail.startswith(":"):
            raise _Refused("malformed host")
        port_text = tail[1:] if tail else ""
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            host, port_text = text, ""
        if not _HOSTNAME.fullmatch(host.lower()):
            raise _Refused("malformed host")
    if not port_text:
        if default_port is None:
            raise _Refused("CONNECT needs host:port")
        return host.lower(), default_port
    if not _PORT.fullmatch(port_text) or not 0 < int(port_text) < 65536:
        raise _Refused("malformed port")
    return host.lower(), int(port_text)


def _where(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _host_header(host: str, port: int) -> str:
    name = f"[{host}]" if ":" in host else host
    return name if port == 80 else f"{name}:{port}"
