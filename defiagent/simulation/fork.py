"""A persistent anvil fork of the target chain, moved to the upstream's latest block on sync.

Why reset instead of snapshot/revert: simulations run through eth_simulateV1, which never
changes the fork's state, so there is nothing to revert; what goes stale is the upstream
state. `sync()` asks the upstream for its head (one request) and calls `anvil_reset` to the
new block only when the head moved or was reorganised (same number, other hash).
Measured on a local upstream: ~12 ms per reset with the flags below (25 ms with anvil's
defaults, which also load ten dev accounts from the upstream and write an on-disk cache).

An upstream URL with an API key in it (path, query, userinfo) reaches anvil only through
a loopback forwarder in this process (`Anvil` starts one, `anvil_reset` points anvil at
it too), so the key is never in anvil's argv or logs; every message names the upstream
by scheme and host only.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from defiagent.chain.anvil import Anvil
from defiagent.chain.rpc import JsonRpcClient, RpcError
from defiagent.errors import InfraError
from defiagent.simulation.batch import BatchRpcClient

log = logging.getLogger("defiagent.simulation")

# No dev accounts to load, no disk cache to write on reset, any sender can be impersonated
# (only used to replay prior calls inside a snapshot when tracing a sequence).
FORK_ARGS = ("--no-storage-caching", "--accounts", "0", "--auto-impersonate")


class ForkManager:
    """Owns one anvil fork process. Use as a context manager (start/stop from the main thread)."""

    def __init__(
        self,
        upstream_url: str,
        *,
        block_number: int | None = None,
        log_dir: Path | None = None,
        rpc_timeout: float = 10.0,
        forward: bool | None = None,
    ) -> None:
        """`forward`: fork through a loopback forwarder (None: when the URL may carry a key)."""
        self.upstream_url = upstream_url
        self.forward = forward
        self.pinned_block = block_number  # None: follow the upstream head on every sync()
        self.rpc_timeout = rpc_timeout
        self._log_dir = Path(log_dir) if log_dir else None
        self._anvil: Anvil | None = None
        self._upstream = JsonRpcClient(upstream_url, timeout=rpc_timeout)
        self._rpc: BatchRpcClient | None = None
        self.block_number: int | None = None
        self.block_hash: str | None = None
        self.block_timestamp: int = 0
        self.chain_id: int | None = None
        # Held while a simulation reads the fork, so a sync cannot reset it mid-read.
        self.lock = threading.RLock()
        self.resets = 0
        self._follower: threading.Thread | None = None
        self._stop = threading.Event()
        # Called (under the lock, in the follower thread) after each background reset, to
        # pull the state the next simulation will read into the fresh fork's cache.
        self.warmers: list[Callable[[], None]] = []

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> ForkManager:
        if self._anvil is not None:
            return self
        head_number, head_hash, head_time = self._upstream_head()
        number = self.pinned_block if self.pinned_block is not None else head_number
        block_hash = head_hash if number == head_number else self._upstream_hash(number)
        self.block_timestamp = head_time
        self._anvil = Anvil(
            fork_url=self.upstream_url,
            fork_block_number=number,
            log_dir=self._log_dir,
            extra_args=FORK_ARGS,
            forward=self.forward,
        )
        try:
            self._anvil.start()
        except InfraError as exc:
            self._anvil = None
            raise InfraError(f"the simulation fork could not start: {exc}") from exc
        self._rpc = BatchRpcClient(self._anvil.url, timeout=self.rpc_timeout)
        self.block_number, self.block_hash = number, block_hash
        self.chain_id = int(self.rpc.call("eth_chainId"), 16)
        return self

    def stop_following(self) -> None:
        """Stop the follower thread (if any); sync() keeps working inline."""
        self._stop.set()
        if self._follower is not None:
            self._follower.join(timeout=5)
            self._follower = None

    def stop(self) -> None:
        self.stop_following()
        if self._rpc is not None:
            self._rpc.close()
            self._rpc = None
        if self._anvil is not None:
            self._anvil.stop()
            self._anvil = None
        self._upstream.close()

    def __enter__(self) -> ForkManager:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._anvil is None:
            raise InfraError("the simulation fork is not running")
        return self._anvil.url

    @property
    def rpc(self) -> BatchRpcClient:
        if self._rpc is None:
            raise InfraError("the simulation fork is not running")
        return self._rpc

    # -- following the upstream ----------------------------------------------------------
    def _upstream_head(self, upstream: JsonRpcClient | None = None) -> tuple[int, str, int]:
        """(number, hash, timestamp) of the upstream's latest block."""
        try:
            block = (upstream or self._upstream).call("eth_getBlockByNumber", "latest", False)
        except RpcError as exc:
            raise InfraError(
                f"the upstream RPC did not answer, so nothing can be simulated: {exc}"
            ) from exc
        if not block:
            raise InfraError("the upstream RPC returned no latest block")
        return int(block["number"], 16), block["hash"], int(block.get("timestamp", "0x0"), 16)

    def _upstream_hash(self, number: int) -> str:
        try:
            block = self._upstream.call("eth_getBlockByNumber", hex(number), False)
        except RpcError as exc:
            raise InfraError(f"the upstream RPC did not answer: {exc}") from exc
        if not block:
            raise InfraError(f"the upstream has no block {number} to fork from")
        block_hash: str = block["hash"]
        return block_hash

    def sync(self) -> int:
        """Move the fork to the upstream head if it moved; return the fork's block number."""
        if self._anvil is None:
            raise InfraError("the simulation fork is not running")
        if self.pinned_block is not None:
            return self.pinned_block
        number, block_hash, timestamp = self._upstream_head()
        self._move_to(number, block_hash, timestamp, self.rpc)
        return number

    def _move_to(
        self,
        number: int,
        block_hash: str,
        timestamp: int,
        fork: JsonRpcClient,
        then: Callable[[], None] | None = None,
    ) -> None:
        """Reset the fork to this upstream block unless it is there; `then` runs after a
        reset, under the same lock, so no simulation reads the new block before it."""
        if (number, block_hash) == (self.block_number, self.block_hash):
            return
        with self.lock:
            if (number, block_hash) == (self.block_number, self.block_hash):
                return  # another thread got there while we waited for the lock
            try:
                # The URL anvil forks from: the forwarder's when the upstream's has a key.
                source = self._anvil.fork_source_url if self._anvil else None
                if source is None:
                    raise InfraError("the simulation fork is not running")
                fork.call("anvil_reset", {"forking": {"jsonRpcUrl": source, "blockNumber": number}})
            except RpcError as exc:
                raise InfraError(
                    f"the simulation fork could not move to block {number}: {exc}"
                ) from exc
            self.block_number, self.block_hash = number, block_hash
            self.block_timestamp = timestamp
            self.resets += 1
            if then is not None:
                then()

    def _warm(self) -> None:
        for warm in self.warmers:
            warm()

    # -- background following ---------------------------------------------------------------
    def follow(self, poll_interval: float = 0.05) -> None:
        """Reset the fork in a background thread as soon as the upstream head moves.

        Takes the reset (~12 ms) and the cold-cache reads after it off the hot path: by the
        time the agent has observed the market and planned, the fork is at the head and warm.
        `sync()` still runs before every simulation, so a late follower only costs time.
        """
        if self._follower is not None or self.pinned_block is not None:
            return
        self._stop.clear()
        self._follower = threading.Thread(
            target=self._follow, args=(poll_interval,), name="fork-follower", daemon=True
        )
        self._follower.start()

    def _follow(self, poll_interval: float) -> None:
        upstream = JsonRpcClient(self.upstream_url, timeout=self.rpc_timeout)
        fork = JsonRpcClient(self.url, timeout=self.rpc_timeout)
        try:
            while not self._stop.wait(poll_interval):
                try:
                    head = self._upstream_head(upstream)
                    # The follower has its own connections: it must not share the hot path's.
                    self._move_to(*head, fork, then=self._warm)
                except Exception as exc:  # the hot path's sync() reports failures; keep going
                    log.warning("the fork follower could not sync: %s", exc)
        finally:
            upstream.close()
            fork.close()
