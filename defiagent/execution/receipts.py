"""Receipts that survive reorgs: a receipt counts once `confirmations` blocks sit on it and
it is still in the canonical chain under the same block hash."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from defiagent.chain.rpc import JsonRpcClient


class Mined(BaseModel):
    model_config = ConfigDict(frozen=True)

    tx_hash: str
    block_number: int
    block_hash: str
    status: int
    gas_used: int


def _receipt(rpc: JsonRpcClient, tx_hash: str) -> dict[str, Any] | None:
    receipt = rpc.call("eth_getTransactionReceipt", tx_hash)
    return receipt if receipt and receipt.get("blockHash") else None


def find_mined(rpc: JsonRpcClient, tx_hashes: list[str], confirmations: int) -> Mined | None:
    """The first of `tx_hashes` mined with enough confirmations, or None (yet)."""
    for tx_hash in reversed(tx_hashes):  # the newest attempt is the likeliest
        receipt = _receipt(rpc, tx_hash)
        if receipt is None:
            continue
        number = int(receipt["blockNumber"], 16)
        head = int(rpc.call("eth_blockNumber"), 16)
        if head - number + 1 < confirmations:
            return None  # mined, not yet deep enough: ask again later
        # Re-read: a reorg between the two reads would show another (or no) block hash.
        canonical = rpc.call("eth_getBlockByNumber", hex(number), False)
        if not canonical or canonical.get("hash") != receipt["blockHash"]:
            return None
        return Mined(
            tx_hash=tx_hash,
            block_number=number,
            block_hash=receipt["blockHash"],
            status=int(receipt.get("status", "0x0"), 16),
            gas_used=int(receipt.get("gasUsed", "0x0"), 16),
        )
    return None
