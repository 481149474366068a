"""A minimal JSON-RPC client for the calls web3.py has no typed method for (anvil_*, evm_*).

Transport only: retries, cross-checks and metrics wrap it, they are not sprinkled in here.
"""

from __future__ import annotations

import itertools
from typing import Any

from defiagent.chain.forwarder import redact_url
from defiagent.chain.transport import HttpTransport, TransportError
from defiagent.errors import InfraError


class RpcError(InfraError):
    """The node answered with a JSON-RPC error, or did not answer."""

    def __init__(self, message: str, *, code: int | None = None, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.data = data


class JsonRpcClient:
    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        self.url = url
        self.label = redact_url(url)  # how messages name it: an API key in the URL stays out
        self.timeout = timeout
        self._transport = HttpTransport(url, timeout=timeout)
        self._ids = itertools.count(1)

    def post(self, payload: Any, what: str) -> Any:
        """Send one JSON-RPC request or batch; transport failures become RpcError."""
        try:
            return self._transport.post(payload)
        except TransportError as exc:
            raise RpcError(f"RPC {self.label} did not answer {what}: {exc}") from exc

    def call(self, method: str, *params: Any) -> Any:
        payload = {
            "jsonrpc": "2.0",
            "id": next(self._ids),
            "method": method,
            "params": list(params),
        }
        body = self.post(payload, method)
        if not isinstance(body, dict):
            raise RpcError(f"RPC {self.label} sent a malformed answer to {method}")
        if "error" in body:
            err = body["error"] or {}
            raise RpcError(
                f"RPC {method} failed: {err.get('message', err)}",
                code=err.get("code"),
                data=err.get("data"),
            )
        return body.get("result")

    def close(self) -> None:
        self._transport.close()
