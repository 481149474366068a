"""Today's path: `eth_sendRawTransaction` to the chain RPC, i.e. the public mempool."""

from __future__ import annotations

from defiagent.broadcast.base import Expiry
from defiagent.chain.rpc import JsonRpcClient
from defiagent.errors import Refused


class PublicSubmitter:
    mode = "public"

    def __init__(self, rpc: JsonRpcClient) -> None:
        self.rpc = rpc

    def submit(self, raw: str, tx_hash: str) -> None:
        self.rpc.call("eth_sendRawTransaction", raw)

    def submit_bundle(self, raws: list[str], tx_hashes: list[str]) -> None:
        # The mempool has no all-or-nothing: sending them one by one could leave the first
        # mined alone, which is not what the caller asked for.
        raise Refused(
            'a bundle needs [broadcast] mode = "private": the public mempool cannot include '
            "transactions all together or not at all"
        )

    def expired(self, tx_hash: str) -> Expiry | None:
        return None  # a public transaction waits in the mempool; replace_stuck() handles it

    def cancel(self, tx_hash: str) -> bool:
        return False

    def fall_back(self, tx_hash: str) -> bool:
        return False
