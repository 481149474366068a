"""A minimal JSON-RPC client for the calls web3.py has no typed method for (anvil_*, evm_*).

Transport only: retries, cross-checks and metrics wrap it, they are not sprinkled in here.
"""

from __future__ import annotations

import itertools
from typing import Any

import requests

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
        self.timeout = timeout
        self._session = requests.Session()
        self._ids = itertools.count(1)

    def call(self, method: str, *params: Any) -> Any:
        payload = {
            "jsonrpc": "2.0",
            "id": next(self._ids),
            "method": method,
            "params": list(params),
        }
        try:
            response = self._session.post(self.url, json=payload, timeout=self.timeout)
            response.raise_for_status()
            body = response.json()
        except requests.RequestException as exc:
            raise RpcError(f"RPC {self.url} did not answer {method}: {exc}") from exc
        except ValueError as exc:
            raise RpcError(f"RPC {self.url} sent a non-JSON answer to {method}") from exc
        if "error" in body:
            err = body["error"] or {}
            raise RpcError(
                f"RPC {method} failed: {err.get('message', err)}",
                code=err.get("code"),
                data=err.get("data"),
            )
        return body.get("result")

    def close(self) -> None:
        self._session.close()
