"""Private submission: signed transactions go to a relay, never to the public mempool.

The relay speaks the interface Flashbots Protect and MEV Blocker accept:
`eth_sendPrivateTransaction` with `[{tx, maxBlockNumber, preferences}]`,
`eth_sendBundle` with `[{txs, blockNumber}]` (one request per target block), and
`eth_cancelPrivateTransaction` with `[{txHash}]`.

Inclusion is tracked on the chain, not on the relay's word: the executor polls receipts
through `rpc_url`, and asks here whether the chain head is past the window. The window is
fixed when the bytes first leave (set before the request, so a lost answer still has one)
and kept on every re-send of the same bytes by this process (a restart gives them a new
one); it is never earlier than the relay's, so a nonce is never given back while the relay
may still include its transaction.

After the window: the relay is asked to cancel (it must drop it anyway), then, only when
`fallback = "public"`, the same signed bytes go to the public mempool once. Same bytes,
same hash: whichever copy lands, the transaction runs once.
"""

from __future__ import annotations

import logging
from typing import Any

from eth_account import Account

from defiagent.broadcast.auth import SigningTransport
from defiagent.broadcast.base import Expiry
from defiagent.broadcast.config import BroadcastConfig, RelayPreferences
from defiagent.chain.rpc import JsonRpcClient, RpcError
from defiagent.errors import ConfigError
from defiagent.monitoring.interfaces import AuditSink, NullAuditSink

log = logging.getLogger("defiagent.broadcast")


class PrivateSubmitter:
    mode = "private"

    def __init__(
        self,
        relay_url: str,
        chain: JsonRpcClient,
        *,
        audit: AuditSink | None = None,
        max_blocks: int = 25,
        fallback: str = "none",
        preferences: RelayPreferences | None = None,
        timeout: float = 10.0,
        auth_key: str | None = None,
    ) -> None:
        if max_blocks < 1:
            raise ValueError("max_blocks must be at least 1")
        self.relay = JsonRpcClient(relay_url, timeout=timeout)
        if auth_key is not None:  # every request signed (X-Flashbots-Signature)
            self.relay._transport = SigningTransport(relay_url, auth_key, timeout=timeout)
        self.chain = chain
        self.audit = audit or NullAuditSink()
        self.max_blocks = max_blocks
        self.fallback = fallback
        self.preferences = preferences or RelayPreferences()
        self._windows: dict[str, int] = {}  # tx hash -> the last block it may land in
        self._public: set[str] = set()  # hashes the fallback sends publicly from now on
        self._fell_back: set[str] = set()

    @classmethod
    def from_config(
        cls, cfg: BroadcastConfig, chain: JsonRpcClient, audit: AuditSink | None = None
    ) -> PrivateSubmitter:
        """From `[broadcast]` with `relay_url` already resolved to a URL (at start)."""
        if not cfg.relay_url:
            raise ValueError("private submission needs a relay URL")
        auth_key = None
        if cfg.auth_key_ref:  # read at start with the other references (missing: exit 3)
            from defiagent.secrets import resolve

            auth_key = resolve(cfg.auth_key_ref, what="broadcast.auth_key_ref").strip()
            try:
                Account.from_key(auth_key)
            except Exception:  # never quote it: it is a key
                raise ConfigError(
                    f"broadcast.auth_key_ref ({cfg.auth_key_ref}) does not hold a secp256k1 "
                    "private key (64 hex digits)"
                ) from None
        return cls(
            cfg.relay_url,
            chain,
            audit=audit,
            max_blocks=cfg.max_blocks,
            fallback=cfg.fallback,
            preferences=cfg.preferences,
            timeout=cfg.relay_timeout_seconds,
            auth_key=auth_key,
        )

    @property
    def relay_label(self) -> str:
        return self.relay.label  # scheme and host: a key in the URL never reaches a record

    def window(self, tx_hash: str) -> int | None:
        """The last block `tx_hash` may be included in, if it was submitted privately."""
        return self._windows.get(tx_hash.lower())

    # -- Submitter -------------------------------------------------------------------------
    def submit(self, raw: str, tx_hash: str) -> None:
        key = tx_hash.lower()
        if key in self._public:
            self.chain.call("eth_sendRawTransaction", raw)
            self._record("broadcast.public-sent", {"tx_hash": tx_hash, "why": "fallback"})
            return
        head = self.chain.call_int("eth_blockNumber")
        # A re-send (reconcile, each tick while it is pending) keeps the window it was given:
        # renewing it would let a relay that never includes it hold the nonce for ever.
        max_block = self._windows.get(key) or head + self.max_blocks
        self._windows[key] = max_block
        answer = self.relay.call(
            "eth_sendPrivateTransaction",
            {
                "tx": raw,
                "maxBlockNumber": hex(max_block),
                "preferences": self.preferences.as_params(),
            },
        )
        self._record(
            "broadcast.private-submitted",
            {
                "tx_hash": tx_hash,
                "relay": self.relay_label,
                "head": head,
                "max_block_number": max_block,
                "preferences": self.preferences.as_params(),
            },
        )
        if isinstance(answer, str) and answer.lower() != key:
            # Not about our bytes: it may or may not hold ours. No code, so the executor
            # keeps the entry in flight and reconcile() re-sends the same bytes.
            raise RpcError(
                f"the relay {self.relay_label} answered with another transaction hash "
                f"({answer}) than {tx_hash}"
            )

    def submit_bundle(self, raws: list[str], tx_hashes: list[str]) -> None:
        if not raws or len(raws) != len(tx_hashes):
            raise ValueError("a bundle needs one hash per transaction")
        head = self.chain.call_int("eth_blockNumber")
        first = head + 1
        last = first - 1
        answers: list[Any] = []
        for block in range(first, head + self.max_blocks + 1):
            # Each request targets one block; the window is widened before it leaves.
            for h in tx_hashes:
                self._windows[h.lower()] = max(block, self._windows.get(h.lower(), 0))
            try:
                answers.append(
                    self.relay.call(
                        "eth_sendBundle", {"txs": list(raws), "blockNumber": hex(block)}
                    )
                )
            except RpcError as exc:
                if block == first:
                    raise  # nothing accepted: the executor decides (refused, or maybe out)
                # Later blocks only: the bundle stands for the blocks the relay accepted.
                self._record(
                    "broadcast.bundle-cut-short",
                    {"tx_hashes": tx_hashes, "relay": self.relay_label, "error": str(exc)},
                )
                break
            last = block
        bundle_hash = (
            answers[0].get("bundleHash") if answers and isinstance(answers[0], dict) else None
        )
        self._record(
            "broadcast.bundle-submitted",
            {
                "tx_hashes": tx_hashes,
                "relay": self.relay_label,
                "head": head,
                "first_block": first,
                "last_block": last,
                "bundle_hash": bundle_hash,
            },
        )

    def expired(self, tx_hash: str) -> Expiry | None:
        key = tx_hash.lower()
        max_block = self._windows.get(key)
        if max_block is None or key in self._public:
            return None
        head = self.chain.call_int("eth_blockNumber")
        if head <= max_block:
            return None
        return Expiry(tx_hash=tx_hash, max_block=max_block, head=head, relay=self.relay_label)

    def cancel(self, tx_hash: str) -> bool:
        try:
            answer = self.relay.call("eth_cancelPrivateTransaction", {"txHash": tx_hash})
        except RpcError as exc:
            self._record(
                "broadcast.cancel-requested",
                {"tx_hash": tx_hash, "relay": self.relay_label, "error": str(exc)},
            )
            return False
        self._record(
            "broadcast.cancel-requested",
            {"tx_hash": tx_hash, "relay": self.relay_label, "cancelled": answer is True},
        )
        return answer is True

    def fall_back(self, tx_hash: str) -> bool:
        key = tx_hash.lower()
        if self.fallback != "public" or key in self._fell_back:
            return False
        self._fell_back.add(key)
        self._public.add(key)
        self._record(
            "broadcast.fallback-public",
            {"tx_hash": tx_hash, "relay": self.relay_label, "max_block_number": self.window(key)},
        )
        return True

    def _record(self, kind: str, payload: dict[str, Any]) -> None:
        try:
            self.audit.record(kind, payload)
        except Exception as exc:  # the executor's own records are the critical ones
            log.error("the audit log could not record %s: %s", kind, exc)
