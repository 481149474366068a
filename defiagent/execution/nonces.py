"""Nonces: the node's pending count, raised past every nonce the journal still holds.

A nonce is held by an entry that is signed or sent (it may be in a mempool, or about to be
re-broadcast by reconcile). Aborted entries were never broadcast, so their nonce is free
again; reusing it is what keeps the account from a gap that would stall every later tx.
"""

from __future__ import annotations

import threading

from defiagent.chain.rpc import JsonRpcClient
from defiagent.execution.journal import Journal


class NonceManager:
    def __init__(self, rpc: JsonRpcClient, journal: Journal) -> None:
        self.rpc = rpc
        self.journal = journal
        self.lock = threading.Lock()  # held by the executor from nonce choice to journaling

    def next_nonce(self, sender: str) -> int:
        pending = int(self.rpc.call("eth_getTransactionCount", sender, "pending"), 16)
        held = self.journal.highest_held_nonce(sender)
        return pending if held is None else max(pending, held + 1)

    def mined_count(self, sender: str) -> int:
        """How many nonces of `sender` are used in the latest block."""
        return int(self.rpc.call("eth_getTransactionCount", sender, "latest"), 16)
