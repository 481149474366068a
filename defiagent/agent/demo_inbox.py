"""A local webhook endpoint for the demo: it receives the agent's alerts as Slack would.

A real deployment points `DEFIAGENT_ALERT_WEBHOOK_URL` at Slack (or any JSON webhook);
the demo has no network, so it starts this inbox on 127.0.0.1 and shows what arrived.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_BODY = 1 << 20


class WebhookInbox:
    """Context manager: `with WebhookInbox() as inbox: ... inbox.url, inbox.received`."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        inbox = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY)
                try:
                    body = json.loads(self.rfile.read(length))
                except ValueError:
                    self.send_response(400)
                    self.end_headers()
                    return
                with inbox._lock:
                    inbox.received.append(body)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hooks/demo"

    def __enter__(self) -> WebhookInbox:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    def alerts(self) -> list[dict[str, Any]]:
        """The structured alerts received (the payload's "defiagent" part)."""
        with self._lock:
            return [r["defiagent"] for r in self.received if isinstance(r.get("defiagent"), dict)]
