"""A local private-transaction relay for tests and the demo, in front of a real anvil.

It speaks what Flashbots Protect and MEV Blocker accept, over real HTTP JSON-RPC on
127.0.0.1:

    eth_sendPrivateTransaction [{tx, maxBlockNumber?, preferences?}] -> the tx hash
    eth_sendBundle             [{txs, blockNumber}]                  -> {bundleHash}
    eth_cancelPrivateTransaction [{txHash}]                          -> true | false
    eth_sendRawTransaction     [raw]     (Protect-RPC style: private, default window)
    anything else                        forwarded to the upstream anvil as is

Held transactions never touch anvil's mempool: a background thread includes each one when
the chain reaches a block it may land in, as a block builder would: anvil's automine is
paused, the transactions are sent and one block mined (`evm_mine`), and if any of them
failed or reverted the block is rolled back (`evm_snapshot`/`evm_revert`), so a bundle lands
whole, in one block, or not at all, and a reverting private transaction is never included.

Behaviour knobs (settable while running, e.g. between tests sharing one relay):
    drop=True          accept everything, include nothing (it expires)
    require_signature  refuse a request without a valid X-Flashbots-Signature
    delay_blocks=N     hold each private transaction N blocks after it arrives
    reorder=True       transactions eligible for the same block go in reverse arrival order
    paused=True        hold everything until unpaused (then they go together)

Blocks advance only when someone mines: `mine(n)`, or `producing_blocks(interval)` for a
background producer; both build each block from what may land in it first, under the
relay's lock, so a hold of N blocks is exactly N blocks and a bundle is never split.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from eth_account import Account
from eth_utils import keccak

from defiagent.broadcast.auth import HEADER, signer_of
from defiagent.chain.rpc import JsonRpcClient, RpcError

log = logging.getLogger("defiagent.testing.relay")
DEFAULT_WINDOW = 25  # blocks, as Flashbots Protect defaults maxBlockNumber
_MAX_BODY = 1024 * 1024


@dataclass
class Held:
    """One private transaction or bundle the relay holds."""

    kind: str  # "private" | "bundle"
    txs: list[str]
    hashes: list[str]
    min_block: int
    max_block: int
    received_at_block: int
    preferences: dict[str, Any] = field(default_factory=dict)
    state: str = "pending"  # pending | included | expired | cancelled | superseded
    block: int | None = None
    failed_at: int | None = None  # the block it last could not land in (a revert)


class RelayError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def tx_hash_of(raw: str) -> str:
    return "0x" + keccak(bytes.fromhex(raw.removeprefix("0x"))).hex()


class RelayEmulator:
    def __init__(
        self,
        upstream_url: str,
        *,
        drop: bool = False,
        delay_blocks: int = 0,
        reorder: bool = False,
        paused: bool = False,
        require_signature: bool = False,
        poll_interval: float = 0.01,
    ) -> None:
        self.upstream = JsonRpcClient(upstream_url, timeout=10.0)
        self.drop = drop
        self.delay_blocks = delay_blocks
        self.reorder = reorder
        self.paused = paused
        self.require_signature = require_signature  # X-Flashbots-Signature on every request
        self.signers: list[str | None] = []  # who signed each request (None: unsigned)
        self.poll_interval = poll_interval
        self.held: list[Held] = []
        self.requests: list[tuple[str, Any]] = []  # every call received, in order
        self._lock = threading.RLock()  # held items and every change to the chain
        self._stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []

    # -- life cycle ------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the relay emulator is not running")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> RelayEmulator:
        if self._server is not None:
            return self
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._stop.clear()
        for target in (self._server.serve_forever, self._run):
            thread = threading.Thread(target=target, daemon=True, name="relay-emulator")
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
        self.upstream.close()

    def __enter__(self) -> RelayEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def configure(self, **knobs: Any) -> None:
        """Change drop / delay_blocks / reorder / paused while running."""
        with self._lock:
            for name, value in knobs.items():
                if name not in ("drop", "delay_blocks", "reorder", "paused", "require_signature"):
                    raise TypeError(f"no knob {name}")
                setattr(self, name, value)

    def reset(self) -> None:
        """Forget every held item and request, and go back to including everything."""
        with self._lock:
            self.held.clear()
            self.requests.clear()
            self.signers.clear()
            self.drop, self.delay_blocks, self.reorder, self.paused = False, 0, False, False
            self.require_signature = False

    # -- what tests and the demo read ------------------------------------------------------
    def find(self, tx_hash: str) -> list[Held]:
        with self._lock:
            return [h for h in self.held if tx_hash.lower() in h.hashes]

    def calls(self, method: str) -> list[Any]:
        with self._lock:
            return [params for m, params in self.requests if m == method]

    def summary(self) -> dict[str, int]:
        """How many items are in each state, for a table."""
        with self._lock:
            counts: dict[str, int] = {}
            for h in self.held:
                counts[h.state] = counts.get(h.state, 0) + 1
            return counts

    # -- the chain -------------------------------------------------------------------------
    def head(self) -> int:
        return self.upstream.call_int("eth_blockNumber")

    def mine(self, blocks: int = 1) -> int:
        """Produce `blocks` blocks, as a builder would: each one holds what may land in it
        (if anything does), else it is empty. The new head."""
        with self._lock:
            for _ in range(blocks):
                before = self.head()
                self.step()
                if self.head() == before:
                    self.upstream.call("evm_mine")
            return self.head()

    @contextlib.contextmanager
    def producing_blocks(self, interval: float = 0.05) -> Iterator[None]:
        """A block every `interval` seconds while inside (a chain that moves by itself)."""
        done = threading.Event()

        def produce() -> None:
            while not done.wait(interval):
                with contextlib.suppress(RpcError):
                    self.mine()

        thread = threading.Thread(target=produce, daemon=True, name="relay-blocks")
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join(timeout=5)

    def wait_until(self, predicate: Any, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if predicate():
                    return True
            time.sleep(self.poll_interval)
        return False

    # -- JSON-RPC --------------------------------------------------------------------------
    def handle(self, request: Any) -> Any:
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            return _error(None, -32600, "invalid request")
        rid, method, params = request.get("id"), request["method"], request.get("params") or []
        with self._lock:
            self.requests.append((method, params))
        try:
            if method == "eth_sendPrivateTransaction":
                result: Any = self._private(_object(params), source=method)
            elif method == "eth_sendRawTransaction":
                result = self._private({"tx": _first(params)}, source=method)
            elif method == "eth_sendBundle":
                result = self._bundle(_object(params))
            elif method == "eth_cancelPrivateTransaction":
                result = self._cancel(_object(params))
            else:
                return self.upstream.post(request, method)  # reads go to the chain as they are
        except RelayError as exc:
            return _error(rid, exc.code, str(exc))
        except RpcError as exc:
            return _error(rid, exc.code or -32000, str(exc))
        return {"jsonrpc": "2.0", "id": rid, "result": result}

    def _private(self, params: dict[str, Any], *, source: str) -> str:
        raw = _raw(params.get("tx"))
        tx_hash = tx_hash_of(raw)
        head = self.head()
        max_block = _block(params.get("maxBlockNumber"), default=head + DEFAULT_WINDOW)
        with self._lock:
            for held in self.held:  # the same bytes again: keep one item, the later window
                if held.kind == "private" and held.hashes == [tx_hash]:
                    if held.state == "pending":
                        held.max_block = max(held.max_block, max_block)
                    return tx_hash
            self.held.append(
                Held(
                    kind="private",
                    txs=[raw],
                    hashes=[tx_hash],
                    min_block=head + 1 + self.delay_blocks,
                    max_block=max_block,
                    received_at_block=head,
                    preferences=dict(params.get("preferences") or {}),
                )
            )
        return tx_hash

    def _bundle(self, params: dict[str, Any]) -> dict[str, str]:
        txs = params.get("txs")
        if not isinstance(txs, list) or not txs:
            raise RelayError(-32602, "txs must be a non-empty list of signed transactions")
        raws = [_raw(t) for t in txs]
        hashes = [tx_hash_of(r) for r in raws]
        block = _block(params.get("blockNumber"), default=None)
        head = self.head()  # a block already past is accepted, as relays do: it just expires
        with self._lock:
            self.held.append(
                Held(
                    kind="bundle",
                    txs=raws,
                    hashes=hashes,
                    min_block=max(block, head + 1 + self.delay_blocks),
                    max_block=block,
                    received_at_block=head,
                )
            )
        bundle_hash = "0x" + keccak(b"".join(bytes.fromhex(h[2:]) for h in hashes)).hex()
        return {"bundleHash": bundle_hash}

    def _cancel(self, params: dict[str, Any]) -> bool:
        tx_hash = str(params.get("txHash", "")).lower()
        with self._lock:
            pending = [
                h
                for h in self.held
                if h.kind == "private" and h.hashes == [tx_hash] and h.state == "pending"
            ]
            for held in pending:
                held.state = "cancelled"
            return bool(pending)

    # -- the builder -----------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.wait(self.poll_interval):
            try:
                self.step()
            except Exception as exc:  # a chain hiccup must not end the builder: try again
                log.debug("relay emulator step failed: %s", exc)

    def step(self) -> None:
        """Expire what is past its window; include what may land in the next block."""
        with self._lock:
            head = self.head()
            upcoming = head + 1
            for held in self.held:
                if held.state == "pending" and upcoming > held.max_block:
                    held.state = "expired"
            if self.paused or self.drop:
                return
            eligible = [
                h
                for h in self.held
                if h.state == "pending"
                and h.min_block <= upcoming
                and (h.failed_at is None or h.failed_at < upcoming)
            ]
            if not eligible:
                return
            if self.reorder:
                eligible.reverse()
            if not self._land(eligible, upcoming) and len(eligible) > 1:
                for held in eligible:  # find the one that fails; the others still land
                    self._land([held], self.head() + 1)

    def _land(self, items: list[Held], upcoming: int) -> bool:
        """Mine `items` in one block, all or none; True if they landed."""
        up = self.upstream
        automine = bool(up.call("anvil_getAutomine"))
        if automine:
            up.call("anvil_setAutomine", False)
        try:
            # Someone else's transaction sent as automine paused would share (and, on a
            # rollback, vanish with) the builder's block: mine it first, as the chain would.
            self._mine_waiting()
            snapshot = up.call("evm_snapshot")
            sent: list[str] = []
            ok = True
            try:
                for item in items:
                    for raw in item.txs:
                        sent.append(up.call("eth_sendRawTransaction", raw))
            except RpcError:
                ok = False
            if ok:
                up.call("evm_mine")
                receipts = [
                    up.call("eth_getTransactionReceipt", h) for i in items for h in i.hashes
                ]
                ok = all(r and r.get("status") == "0x1" for r in receipts)
            if not ok:
                up.call("evm_revert", snapshot)
                for tx_hash in sent:  # nothing of it may stay in the pool and land later
                    with contextlib.suppress(RpcError):
                        up.call("anvil_dropTransaction", tx_hash)
                for item in items:
                    item.failed_at = upcoming
                return False
            block = int(receipts[0]["blockNumber"], 16)
            landed = {h for i in items for h in i.hashes}
            for item in items:
                item.state, item.block = "included", block
            for other in self.held:  # the same bundle for other blocks cannot land again
                if other.state == "pending" and landed & set(other.hashes):
                    other.state = "superseded"
            return True
        finally:
            if automine:
                up.call("anvil_setAutomine", True)
                # One that arrived while paused would wait for the next transaction.
                self._mine_waiting()

    def _mine_waiting(self) -> None:
        """Mine a block when anvil's pool holds transactions (sent by others, not held)."""
        with contextlib.suppress(RpcError):
            status = self.upstream.call("txpool_status") or {}
            if int(str(status.get("pending", "0x0")), 16) > 0:
                self.upstream.call("evm_mine")


def start_relay(upstream_url: str, **knobs: Any) -> RelayEmulator:
    """A running relay in front of `upstream_url`; `.url` to configure, `.stop()` to end."""
    return RelayEmulator(upstream_url, **knobs).start()


# -- HTTP ------------------------------------------------------------------------------------
def _handler(relay: RelayEmulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length <= 0 or length > _MAX_BODY:
                self._send(413 if length > _MAX_BODY else 400, {"error": "bad body size"})
                return
            body = self.rfile.read(length)
            header = self.headers.get(HEADER)
            signer = signer_of(body, header) if header else None
            with relay._lock:
                relay.signers.append(signer)
            try:
                request = json.loads(body)
            except ValueError:
                self._send(200, _error(None, -32700, "parse error"))
                return
            if relay.require_signature and signer is None:  # as relay.flashbots.net does
                self._send(200, _error(None, -32600, f"missing or invalid {HEADER} header"))
                return
            if isinstance(request, list):
                self._send(200, [relay.handle(r) for r in request])
            else:
                self._send(200, relay.handle(request))

        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return  # quiet: tests read `relay.requests`

    return Handler


def _error(rid: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message}}


def _object(params: Any) -> dict[str, Any]:
    first = _first(params)
    if not isinstance(first, dict):
        raise RelayError(-32602, "params must be [ {…} ]")
    return first


def _first(params: Any) -> Any:
    if not isinstance(params, list) or len(params) != 1:
        raise RelayError(-32602, "params must hold exactly one item")
    return params[0]


def _raw(value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise RelayError(-32602, "a transaction must be 0x-prefixed signed bytes")
    try:
        Account.recover_transaction(value)  # a relay refuses what is not a signed tx
    except Exception as exc:
        raise RelayError(-32602, f"not a signed transaction: {exc}") from exc
    return value.lower()


def _block(value: Any, *, default: int | None) -> int:
    if value is None and default is not None:
        return default
    if isinstance(value, str) and value.startswith("0x"):
        try:
            return int(value, 16)
        except ValueError:
            pass
    raise RelayError(-32602, f"a block number must be a 0x quantity, not {value!r}")
