"""HTTP transport for JSON-RPC: one keep-alive connection, no per-request overhead.

Why not requests: on the simulation hot path every round trip counts; requests spends
~0.7 ms per call in its own machinery (measured: 0.91 ms vs 0.23 ms for eth_blockNumber on
a local anvil). http.client on a kept-alive connection is all JSON-RPC needs.
"""

from __future__ import annotations

import base64
import http.client
import json
import threading
from typing import Any
from urllib.parse import unquote, urlsplit

from defiagent.net.tls import ssl_context

# Errors that mean the kept-alive connection went stale before the server read our request.
_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


class TransportError(Exception):
    """The server could not be reached, or did not answer with JSON."""


class NotJson(TransportError):
    """The server answered, with something that is not JSON (an HTML error page, bytes)."""


class HttpTransport:
    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http(s) URL")
        self.timeout = timeout
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if parts.username is not None:  # https://user:secret@host: basic auth, never logged
            token = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            self._headers["Authorization"] = "Basic " + base64.b64encode(token.encode()).decode()
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()  # one request at a time on the shared connection

    def _connect(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self._https:  # verified: the system store plus [tls] ca_bundle
                self._conn = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self.timeout, context=ssl_context()
                )
            else:
                self._conn = http.client.HTTPConnection(
                    self._host, self._port, timeout=self.timeout
                )
        return self._conn

    def post(self, payload: Any) -> Any:
        body = json.dumps(payload).encode()
        with self._lock:
            for attempt in (1, 2):
                conn = self._connect()
                try:
                    conn.request("POST", self._path, body=body, headers=self._headers)
                    response = conn.getresponse()
                    data = response.read()
                except _STALE as exc:
                    self.close_locked()
                    if attempt == 2:
                        raise TransportError(f"connection lost: {exc}") from exc
                    continue  # a stale keep-alive connection: reconnect once
                except (OSError, http.client.HTTPException) as exc:
                    self.close_locked()
                    raise TransportError(str(exc) or type(exc).__name__) from exc
                if response.status >= 400:
                    raise TransportError(f"HTTP {response.status} {response.reason}")
                try:
                    return json.loads(data)
                except ValueError as exc:  # UnicodeDecodeError included: bytes, not text
                    kind = response.getheader("Content-Type") or "no content type"
                    raise NotJson(f"it is not JSON ({kind}, starting {data[:24]!r})") from exc
        raise TransportError("unreachable")  # pragma: no cover

    def close_locked(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        with self._lock:
            self.close_locked()
