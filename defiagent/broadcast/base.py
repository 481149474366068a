"""The seam between the executor and the network: where signed bytes are sent.

The executor signs, journals and tracks receipts on the chain itself; a Submitter only
hands signed raw transactions to someone (the public mempool through `rpc_url`, or a
private relay) and, for a private one, says when its inclusion window is over. Errors are
the executor's to classify: a submitter raises `RpcError` as `eth_sendRawTransaction`
would (a code means the receiver refused it, no code means it may or may not be out).
"""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, ConfigDict


class Expiry(BaseModel):
    """A private submission's window is over: the chain is past `max_block` without it."""

    model_config = ConfigDict(frozen=True)

    tx_hash: str
    max_block: int
    head: int
    relay: str  # scheme and host only


class Submitter(Protocol):
    mode: str  # "public" | "private", for the audit log

    def submit(self, raw: str, tx_hash: str) -> None:
        """Hand one signed transaction over (again: the same bytes are always safe to resend)."""
        ...

    def submit_bundle(self, raws: list[str], tx_hashes: list[str]) -> None:
        """Hand over transactions that must land together, in this order, or not at all."""
        ...

    def expired(self, tx_hash: str) -> Expiry | None:
        """Its inclusion window is over (never for a public transaction)."""
        ...

    def cancel(self, tx_hash: str) -> bool:
        """Ask the receiver to forget it (best effort); True if it said it did."""
        ...

    def fall_back(self, tx_hash: str) -> bool:
        """After expiry: True once if the configured fallback now sends it publicly
        (the next submit of these bytes goes to the public mempool)."""
        ...
