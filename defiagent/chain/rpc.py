"""A minimal JSON-RPC client for the calls web3.py has no typed method for (anvil_*, evm_*).

Transport only: retries, cross-checks and metrics wrap it, they are not sprinkled in here.
"""

from __future__ import annotations

import itertools
from typing import Any

from defiagent.chain.forwarder import redact_url
from defiagent.chain.transport import HttpTransport, NotJson, TransportError
from defiagent.errors import ConfigError, InfraError


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
        try:
            self._transport = HttpTransport(url, timeout=timeout)
        except ValueError as exc:  # a URL someone typed (--rpc-url, a config field)
            shown = "" if self.label.startswith("(") else f" {self.label}"  # never a raw key
            raise ConfigError(
                f"the RPC URL{shown} is not an http(s) URL with a host "
                "(check --rpc-url, rpc_url or DEFIAGENT_RPC_URL)"
            ) from exc
        self._ids = itertools.count(1)

    def post(self, payload: Any, what: str) -> Any:
        """Send one JSON-RPC request or batch; transport failures become RpcError."""
        try:
            return self._transport.post(payload)
        except NotJson as exc:
            raise RpcError(f"RPC {self.label} sent a malformed answer to {what}: {exc}") from exc
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
            if not isinstance(err, dict):  # not a JSON-RPC error object: say what it was
                err = {"message": _excerpt(err)}
            raise RpcError(
                f"RPC {method} failed: {err.get('message', err)}",
                code=err.get("code"),
                data=err.get("data"),
            )
        return body.get("result")

    def call_int(self, method: str, *params: Any) -> int:
        """A call whose result is a QUANTITY (0x-prefixed hex); anything else is RpcError."""
        return quantity(self.call(method, *params), f"RPC {self.label}", method)

    def close(self) -> None:
        self._transport.close()


def _excerpt(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def quantity(value: Any, source: str, method: str) -> int:
    """A JSON-RPC QUANTITY ("0x1a") as an int; a node that sends anything else (an object,
    a list, a number, non-hex text) is named in an RpcError, never a TypeError."""
    if isinstance(value, str) and value[:2] in ("0x", "0X"):
        try:
            return int(value, 16)
        except ValueError:
            pass
    raise RpcError(f"{source} sent a malformed answer to {method}: {_excerpt(value)}")


def data_bytes(value: Any, source: str, method: str) -> bytes:
    """JSON-RPC DATA ("0x..." hex, None read as empty) as bytes; anything else is RpcError."""
    if value is None or value == "":
        return b""
    if isinstance(value, str) and value[:2] in ("0x", "0X"):
        try:
            return bytes.fromhex(value[2:])
        except ValueError:
            pass
    raise RpcError(f"{source} sent a malformed answer to {method}: {_excerpt(value)}")
