"""JSON-RPC batches: several requests in one HTTP round trip (the simulation hot path)."""

from __future__ import annotations

from typing import Any

from defiagent.chain.rpc import JsonRpcClient, RpcError


class BatchRpcClient(JsonRpcClient):
    """JsonRpcClient plus `batch`: one POST, answers returned in request order."""

    def batch(self, requests_: list[tuple[str, list[Any]]]) -> list[Any]:
        """Run all requests; any error fails the whole batch (the caller cannot half-trust)."""
        first = next(self._ids)
        payload = [
            {"jsonrpc": "2.0", "id": first + i, "method": method, "params": params}
            for i, (method, params) in enumerate(requests_)
        ]
        # Keep the id counter ahead of the ids used here.
        for _ in range(len(requests_) - 1):
            next(self._ids)
        names = ", ".join(m for m, _ in requests_)
        body = self.post(payload, names)
        if not isinstance(body, list):
            err = body.get("error", body) if isinstance(body, dict) else body
            raise RpcError(f"RPC {self.label} refused the batch {names}: {err}")
        by_id = {item.get("id"): item for item in body if isinstance(item, dict)}
        results = []
        for i, (method, _) in enumerate(requests_):
            item = by_id.get(first + i)
            if item is None:
                raise RpcError(f"RPC {self.label} sent no answer to {method}")
            if "error" in item:
                err = item["error"] or {}
                raise RpcError(
                    f"RPC {method} failed: {err.get('message', err)}",
                    code=err.get("code"),
                    data=err.get("data"),
                )
            results.append(item.get("result"))
        return results
