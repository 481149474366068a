"""Read code, storage and view calls from a node, all at one pinned block.

Accepts a URL, a web3.Web3 or a JsonRpcClient. Every read is pinned to the block number
taken when the reader is made, so a proxy cannot be upgraded between reading its slot
and reading the implementation's code.
"""

from __future__ import annotations

from typing import Any

from eth_utils import to_checksum_address

from defiagent.chain.forwarder import redact_url
from defiagent.chain.rpc import JsonRpcClient, RpcError, data_bytes, quantity
from defiagent.errors import InfraError


class ChainReader:
    def __init__(self, source: Any, *, block: int | str | None = None) -> None:
        self._close = False
        if isinstance(source, str):
            self._client: Any = JsonRpcClient(source, timeout=30.0)
            self._close = True
            self.url = source
        elif isinstance(source, JsonRpcClient):
            self._client = source
            self.url = source.url
        elif hasattr(source, "provider"):  # web3.Web3
            self._client = _Web3Client(source)
            self.url = getattr(source.provider, "endpoint_uri", "web3")
        else:
            raise TypeError("expected an RPC URL, a JsonRpcClient or a web3.Web3")
        self.chain_id = self._int("eth_chainId")
        self.block = self._int("eth_blockNumber") if block is None else block

    def _call(self, method: str, *params: Any) -> Any:
        try:
            return self._client.call(method, *params)
        except RpcError:
            raise
        except InfraError:
            raise
        except Exception as exc:  # transport errors from web3 providers
            raise InfraError(f"RPC {self._label} failed on {method}: {exc}") from exc

    @property
    def _label(self) -> str:
        return redact_url(self.url) if "://" in str(self.url) else str(self.url)

    def _int(self, method: str, *params: Any) -> int:
        return quantity(self._call(method, *params), f"RPC {self._label}", method)

    def _bytes(self, method: str, *params: Any) -> bytes:
        return data_bytes(self._call(method, *params), f"RPC {self._label}", method)

    @property
    def tag(self) -> str:
        return hex(self.block) if isinstance(self.block, int) else self.block

    def code(self, address: str) -> bytes:
        return self._bytes("eth_getCode", to_checksum_address(address), self.tag)

    def storage(self, address: str, slot: int | str) -> bytes:
        position = hex(slot) if isinstance(slot, int) else slot
        found = self._bytes("eth_getStorageAt", to_checksum_address(address), position, self.tag)
        return found.rjust(32, b"\0")

    def call(self, address: str, data: bytes) -> bytes | None:
        """A view call; None if it reverts (a missing function is an answer, not an error)."""
        tx = {"to": to_checksum_address(address), "data": "0x" + data.hex()}
        try:
            result = self._call("eth_call", tx, self.tag)
        except RpcError as exc:
            if exc.code in (3, -32000, -32015) or "revert" in str(exc).lower():
                return None
            raise
        return data_bytes(result, f"RPC {self._label}", "eth_call")

    def close(self) -> None:
        if self._close:
            self._client.close()

    def __enter__(self) -> ChainReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Web3Client:
    """JsonRpcClient's call() over a web3 provider (keeps one code path for both)."""

    def __init__(self, w3: Any) -> None:
        self.w3 = w3
        self.url = getattr(w3.provider, "endpoint_uri", "web3")

    def call(self, method: str, *params: Any) -> Any:
        response = self.w3.provider.make_request(method, list(params))
        if response.get("error"):
            err = response["error"]
            message = err.get("message", err) if isinstance(err, dict) else err
            code = err.get("code") if isinstance(err, dict) else None
            raise RpcError(f"RPC {method} failed: {message}", code=code)
        result = response.get("result")
        if isinstance(result, bytes | bytearray):
            return "0x" + bytes(result).hex()
        return result
