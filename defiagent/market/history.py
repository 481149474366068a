"""Recorded market history: Uniswap V2 pool reserves, block by block, in Parquet.

A history folder holds two files:

- `meta.json`: the chain, the block range, where it came from (`chain` or `ohlcv`), and
  each pool's state just before the first block (tokens, symbols, decimals, reserves, the
  price accumulators, LP supply) plus its runtime codehash at the last block;
- `ticks.parquet`: one row per (block, pool) where the pool's reserves changed, with the
  block's timestamp and base fee. Reserves are decimal strings (uint112 does not fit int64).

A *tick* of the backtest is one row-block: every block where some pool changed, in order.
`MarketHistory.load(dir)` reads both and checks them; `content_hash` is a sha256 over the
logical content (not the file bytes, which carry the writer's version), so a certificate
names exactly the data it was tested on.

`record` reads `Sync` events through `eth_getLogs` in bounded block ranges (a range the node
refuses as too large is split in half, a transient failure retried), and each block's
timestamp and base fee in JSON-RPC batches. `import_ohlcv` turns a CSV of candles into the
same format, for one pool of constant quote-side depth (docs/backtest.md).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any, Literal

from eth_utils import keccak, to_checksum_address
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from defiagent.chain.rpc import RpcError
from defiagent.errors import ConfigError, InfraError
from defiagent.market.models import PoolState, TokenInfo
from defiagent.market.references import Q112, U256
from defiagent.types import Address

HISTORY_VERSION = 1
META_FILE = "meta.json"
TICKS_FILE = "ticks.parquet"
# keccak("Sync(uint112,uint112)"): the pair's reserves after every mint, burn, swap, sync.
SYNC_TOPIC = "0x1c411e9a96e071241c2f21f7726b17ae89e3cab4c78be50e062b03a9fffbbad1"
DEFAULT_MAX_RANGE = 2_000  # blocks per eth_getLogs; halved on "too large" answers
HEADER_BATCH = 200  # block headers per JSON-RPC batch
OHLCV_COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PoolStart(_Model):
    """A pool as it was just before the first recorded block."""

    address: Address
    token0: TokenInfo
    token1: TokenInfo
    reserve0: int = Field(ge=0)
    reserve1: int = Field(ge=0)
    timestamp_last: int = Field(ge=0)
    cumulative0: int = Field(ge=0)
    cumulative1: int = Field(ge=0)
    total_supply: int = Field(ge=0)
    codehash: str = ""  # runtime code keccak at the last block ("" for imported candles)


class HistoryMeta(_Model):
    version: Literal[1] = 1
    chain_id: int = Field(gt=0)
    source: Literal["chain", "ohlcv"]
    from_block: int = Field(ge=0)
    to_block: int = Field(ge=0)
    pools: list[PoolStart] = Field(min_length=1)
    recorded_at: str = ""  # not part of the content hash
    note: str = ""


@dataclass
class PoolSeries:
    """One pool's state at every tick (carried forward where it did not change)."""

    start: PoolStart
    reserve0: list[int] = field(default_factory=list)
    reserve1: list[int] = field(default_factory=list)
    timestamp_last: list[int] = field(default_factory=list)
    cumulative0: list[int] = field(default_factory=list)
    cumulative1: list[int] = field(default_factory=list)

    def state(self, i: int) -> PoolState:
        s = self.start
        return PoolState.model_construct(
            address=s.address,
            token0=s.token0.address,
            token1=s.token1.address,
            reserve0=self.reserve0[i],
            reserve1=self.reserve1[i],
            block_timestamp_last=self.timestamp_last[i],
            total_supply=s.total_supply,
        )


@dataclass
class MarketHistory:
    """A loaded history: per tick its block, timestamp, base fee, and each pool's state.

    Tick indexes are 0-based positions in `blocks`; `index_of_block` maps a block number to
    the first tick at or after it."""

    path: Path | None
    meta: HistoryMeta
    blocks: list[int]
    timestamps: list[int]
    base_fees: list[int]
    pools: dict[str, PoolSeries]
    content_hash: str

    def __len__(self) -> int:
        return len(self.blocks)

    @property
    def tokens(self) -> dict[str, TokenInfo]:
        out: dict[str, TokenInfo] = {}
        for p in self.meta.pools:
            out[p.token0.address] = p.token0
            out[p.token1.address] = p.token1
        return out

    def index_of_block(self, block: int) -> int:
        import bisect

        return bisect.bisect_left(self.blocks, block)

    def describe(self) -> str:
        if not self.blocks:
            return "an empty history"
        return (
            f"{len(self)} ticks, blocks {self.blocks[0]}-{self.blocks[-1]} "
            f"({_iso(self.timestamps[0])} to {_iso(self.timestamps[-1])}), "
            f"{len(self.pools)} pool(s), sha256 {self.content_hash[:16]}…"
        )

    # --- reading ----------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path | str) -> MarketHistory:
        """Read a history folder; ConfigError (one sentence) when it is not one."""
        import pyarrow.parquet as pq  # type: ignore[import-untyped]

        path = Path(path)
        if not path.is_dir():
            raise ConfigError(f"the market history {path} is not a folder")
        meta_path, ticks_path = path / META_FILE, path / TICKS_FILE
        try:
            meta = HistoryMeta.model_validate_json(meta_path.read_bytes())
        except FileNotFoundError:
            raise ConfigError(
                f"the market history {path} has no {META_FILE}: record one with "
                "`defiagent market record` or `defiagent market import`"
            ) from None
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(top level)"
            raise ConfigError(f"{meta_path} is malformed at {where}: {first['msg']}") from None
        try:
            table = pq.read_table(ticks_path)
        except FileNotFoundError:
            raise ConfigError(f"the market history {path} has no {TICKS_FILE}") from None
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise ConfigError(f"{ticks_path} is not a readable Parquet file: {exc}") from None
        missing = [c for c in _TICK_COLUMNS if c not in table.column_names]
        if missing:
            raise ConfigError(f"{ticks_path} lacks the column(s) {', '.join(missing)}")
        rows = {c: table.column(c).to_pylist() for c in _TICK_COLUMNS}
        return build_history(meta, _rows(rows, ticks_path), path=path)


_TICK_COLUMNS = ("block", "timestamp", "base_fee", "pool", "reserve0", "reserve1")


@dataclass(frozen=True)
class TickRow:
    block: int
    timestamp: int
    base_fee: int
    pool: str
    reserve0: int
    reserve1: int


def _rows(columns: dict[str, list[Any]], where: Path) -> list[TickRow]:
    out = []
    n = len(columns["block"])
    for i in range(n):
        try:
            row = TickRow(
                block=int(columns["block"][i]),
                timestamp=int(columns["timestamp"][i]),
                base_fee=int(columns["base_fee"][i]),
                pool=str(columns["pool"][i]),
                reserve0=int(columns["reserve0"][i]),
                reserve1=int(columns["reserve1"][i]),
            )
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: row {i + 1} has a missing or non-integer value") from None
        out.append(row)
    return out


def build_history(
    meta: HistoryMeta, rows: Sequence[TickRow], *, path: Path | None = None
) -> MarketHistory:
    """Index `rows` by tick, carry each pool's state forward and accumulate its TWAP
    accumulators exactly as the pair does (UQ112x112 price x seconds since the last update).
    Rows must be in block order; a pool not in `meta` or a bad reserve is refused."""
    where = str(path) if path is not None else "the history"
    series = {p.address: PoolSeries(start=p) for p in meta.pools}
    state = {
        p.address: [p.reserve0, p.reserve1, p.timestamp_last, p.cumulative0, p.cumulative1]
        for p in meta.pools
    }
    blocks: list[int] = []
    timestamps: list[int] = []
    base_fees: list[int] = []
    i = 0
    while i < len(rows):
        block = rows[i].block
        if blocks and block <= blocks[-1]:
            raise ConfigError(f"{where}: blocks are not in increasing order at block {block}")
        if not meta.from_block <= block <= meta.to_block:
            raise ConfigError(
                f"{where}: block {block} is outside its range {meta.from_block}-{meta.to_block}"
            )
        ts, fee = rows[i].timestamp, rows[i].base_fee
        if timestamps and ts < timestamps[-1]:
            raise ConfigError(f"{where}: block {block}'s timestamp goes back in time")
        changed: dict[str, tuple[int, int]] = {}
        while i < len(rows) and rows[i].block == block:
            r = rows[i]
            if r.pool not in series:
                raise ConfigError(f"{where}: block {block} names pool {r.pool}, not in meta")
            if not (0 <= r.reserve0 < 2**112 and 0 <= r.reserve1 < 2**112):
                raise ConfigError(f"{where}: block {block} has a reserve outside uint112")
            changed[r.pool] = (r.reserve0, r.reserve1)  # the block's last Sync wins
            i += 1
        for address, s in series.items():
            st = state[address]
            if address in changed:
                elapsed = (ts - st[2]) % 2**32
                if elapsed and st[0] and st[1]:
                    st[3] = (st[3] + (st[1] * Q112 // st[0]) * elapsed) % U256
                    st[4] = (st[4] + (st[0] * Q112 // st[1]) * elapsed) % U256
                st[0], st[1] = changed[address]
                st[2] = ts % 2**32
            s.reserve0.append(st[0])
            s.reserve1.append(st[1])
            s.timestamp_last.append(st[2])
            s.cumulative0.append(st[3])
            s.cumulative1.append(st[4])
        blocks.append(block)
        timestamps.append(ts)
        base_fees.append(fee)
    return MarketHistory(
        path=path,
        meta=meta,
        blocks=blocks,
        timestamps=timestamps,
        base_fees=base_fees,
        pools=series,
        content_hash=content_hash(meta, rows),
    )


def content_hash(meta: HistoryMeta, rows: Sequence[TickRow]) -> str:
    """sha256 over the meta (without recorded_at) and every row, canonically encoded."""
    h = hashlib.sha256()
    body = meta.model_dump(mode="json", exclude={"recorded_at"})
    h.update(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
    for r in rows:
        h.update(
            f"\n{r.block},{r.timestamp},{r.base_fee},{r.pool},{r.reserve0},{r.reserve1}".encode()
        )
    return h.hexdigest()


def write_history(out: Path | str, meta: HistoryMeta, rows: Sequence[TickRow]) -> MarketHistory:
    """Write `meta.json` and `ticks.parquet` into `out` (created; an existing history in it
    is refused, never overwritten) and return it loaded."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out)
    if (out / META_FILE).exists() or (out / TICKS_FILE).exists():
        raise ConfigError(f"{out} already holds a market history; choose another --out folder")
    history = build_history(meta, rows, path=out)  # checks before anything is written
    out.mkdir(parents=True, exist_ok=True)
    table = pa.table(
        {
            "block": pa.array([r.block for r in rows], pa.int64()),
            "timestamp": pa.array([r.timestamp for r in rows], pa.int64()),
            "base_fee": pa.array([str(r.base_fee) for r in rows], pa.string()),
            "pool": pa.array([r.pool for r in rows], pa.string()),
            "reserve0": pa.array([str(r.reserve0) for r in rows], pa.string()),
            "reserve1": pa.array([str(r.reserve1) for r in rows], pa.string()),
        }
    )
    pq.write_table(table, out / TICKS_FILE)
    (out / META_FILE).write_text(meta.model_dump_json(indent=2) + "\n")
    return history


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


# --- recording from a chain ---------------------------------------------------------------


class _Rpc:
    """Bounded retries around a batch-capable JSON-RPC client (transient failures only)."""

    def __init__(self, url: str, *, timeout: float, retries: int = 3) -> None:
        from defiagent.simulation.batch import BatchRpcClient

        self.client = BatchRpcClient(url, timeout=timeout)
        self.retries = retries

    def call(self, method: str, *params: Any) -> Any:
        return self._retry(lambda: self.client.call(method, *params))

    def batch(self, requests: list[tuple[str, list[Any]]]) -> list[Any]:
        return self._retry(lambda: self.client.batch(requests))

    def _retry(self, fn: Callable[[], Any]) -> Any:
        for attempt in range(self.retries):
            try:
                return fn()
            except RpcError as exc:
                if exc.code is not None or attempt == self.retries - 1:
                    raise  # the node answered with an error: not transient
                time.sleep(0.2 * 2**attempt)
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.client.close()


def _too_large(exc: RpcError) -> bool:
    text = f"{exc.message} {exc.data}".lower()
    return any(
        w in text
        for w in ("too large", "too many", "limit", "range", "exceed", "10000", "query returned")
    )


def fetch_sync_logs(
    rpc: Any, pools: Sequence[str], from_block: int, to_block: int, *, max_range: int
) -> list[dict[str, Any]]:
    """Every Sync log of `pools` in [from_block, to_block], in chain order. Ranges of at most
    `max_range` blocks; a range the node refuses as too large is split in half (down to one
    block, where the refusal stands)."""
    out: list[dict[str, Any]] = []
    pending = [
        (lo, min(lo + max_range - 1, to_block)) for lo in range(from_block, to_block + 1, max_range)
    ]
    while pending:
        lo, hi = pending.pop(0)
        try:
            logs = rpc.call(
                "eth_getLogs",
                {
                    "address": list(pools),
                    "topics": [SYNC_TOPIC],
                    "fromBlock": hex(lo),
                    "toBlock": hex(hi),
                },
            )
        except RpcError as exc:
            if hi > lo and _too_large(exc):
                mid = (lo + hi) // 2
                pending[:0] = [(lo, mid), (mid + 1, hi)]
                continue
            raise InfraError(f"eth_getLogs for blocks {lo}-{hi} failed: {exc.message}") from exc
        if not isinstance(logs, list):
            raise InfraError(f"eth_getLogs for blocks {lo}-{hi} answered something not a list")
        out.extend(logs)
    out.sort(key=lambda log: (int(log["blockNumber"], 16), int(log["logIndex"], 16)))
    return out


def record(
    rpc_url: str,
    pools: Sequence[str],
    from_block: int,
    to_block: int,
    out: Path | str,
    *,
    max_range: int = DEFAULT_MAX_RANGE,
    timeout: float = 30.0,
    progress: Callable[[str], None] | None = None,
) -> MarketHistory:
    """Record `pools` over [from_block, to_block] from the chain at `rpc_url` into `out`."""
    from web3 import Web3

    from defiagent.market.reader import ChainReader

    say = progress or (lambda _m: None)
    if from_block < 1 or to_block < from_block:
        raise ConfigError(
            f"the block range {from_block}-{to_block} is empty or starts at the genesis block; "
            "--from-block must be at least 1 and at most --to-block"
        )
    if not pools:
        raise ConfigError("give at least one pool with --pools")
    if max_range < 1:
        raise ConfigError("--max-range must be at least 1 block")
    addresses = [to_checksum_address(p) for p in pools]
    rpc = _Rpc(rpc_url, timeout=timeout)
    try:
        try:
            chain_id = int(rpc.call("eth_chainId"), 16)
            head = int(rpc.call("eth_blockNumber"), 16)
        except (RpcError, ValueError, TypeError) as exc:
            raise InfraError(f"the RPC does not answer: {exc}") from exc
        if to_block > head:
            raise ConfigError(f"--to-block {to_block} is past the chain's head {head}")
        w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))
        before = ChainReader(w3, from_block - 1)
        starts = []
        for address in addresses:
            say(f"reading pool {address} at block {from_block - 1}")
            try:
                state = before.pool(address)
                c0, c1 = before.cumulative_prices(address)
                t0, t1 = before.token(state.token0), before.token(state.token1)
            except InfraError as exc:
                raise InfraError(
                    f"{address} cannot be read as a Uniswap V2 pair at block {from_block - 1}: "
                    f"{exc.message}"
                ) from exc
            code = rpc.call("eth_getCode", address, hex(to_block))
            starts.append(
                PoolStart(
                    address=address,
                    token0=t0,
                    token1=t1,
                    reserve0=state.reserve0,
                    reserve1=state.reserve1,
                    timestamp_last=state.block_timestamp_last,
                    cumulative0=c0,
                    cumulative1=c1,
                    total_supply=state.total_supply,
                    codehash="0x" + keccak(hexstr=code).hex(),
                )
            )
        say(f"reading Sync events of blocks {from_block}-{to_block}")
        logs = fetch_sync_logs(rpc, addresses, from_block, to_block, max_range=max_range)
        blocks = sorted({int(log["blockNumber"], 16) for log in logs})
        headers: dict[int, tuple[int, int]] = {}
        for k in range(0, len(blocks), HEADER_BATCH):
            chunk = blocks[k : k + HEADER_BATCH]
            say(f"reading block headers {chunk[0]}-{chunk[-1]}")
            answers = rpc.batch([("eth_getBlockByNumber", [hex(b), False]) for b in chunk])
            for b, h in zip(chunk, answers, strict=True):
                if not isinstance(h, dict):
                    raise InfraError(f"the RPC has no header for block {b}")
                headers[b] = (int(h["timestamp"], 16), int(h.get("baseFeePerGas") or "0x0", 16))
        rows = []
        for log in logs:
            b = int(log["blockNumber"], 16)
            data = bytes.fromhex(log["data"][2:])
            if len(data) != 64:
                raise InfraError(f"a Sync log in block {b} is not two uint112 values")
            ts, fee = headers[b]
            rows.append(
                TickRow(
                    block=b,
                    timestamp=ts,
                    base_fee=fee,
                    pool=to_checksum_address(log["address"]),
                    reserve0=int.from_bytes(data[:32], "big"),
                    reserve1=int.from_bytes(data[32:], "big"),
                )
            )
        meta = HistoryMeta(
            chain_id=chain_id,
            source="chain",
            from_block=from_block,
            to_block=to_block,
            pools=starts,
            recorded_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        say(f"writing {len(rows)} reserve updates in {len(blocks)} blocks")
        return write_history(out, meta, rows)
    finally:
        rpc.close()


# --- importing candles ----------------------------------------------------------------------


def _timestamp(text: str) -> int:
    text = text.strip()
    if text.isdigit():
        return int(text)
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError("an ISO-8601 time needs a timezone (e.g. Z or +00:00)")
    return int(value.timestamp())


def read_ohlcv(path: Path | str) -> list[tuple[int, float]]:
    """(timestamp, close) of each candle of a CSV with the header
    timestamp,open,high,low,close,volume. A bad row is one sentence naming its line."""
    path = Path(path)
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"the candle file {path} cannot be read: {exc.strerror}") from exc
    out: list[tuple[int, float]] = []
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise ConfigError(f"the candle file {path} is empty") from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ConfigError(f"line 1 of {path} is not CSV text: {exc}") from None
        if tuple(h.strip().lower() for h in header) != OHLCV_COLUMNS:
            raise ConfigError(
                f"line 1 of {path} must be the header {','.join(OHLCV_COLUMNS)}, "
                f"not {','.join(header)[:120]}"
            )
        line = 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except (csv.Error, UnicodeDecodeError) as exc:
                raise ConfigError(f"line {line + 1} of {path} is not CSV text: {exc}") from None
            line = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != len(OHLCV_COLUMNS):
                raise ConfigError(
                    f"line {line} of {path} has {len(row)} fields, not {len(OHLCV_COLUMNS)}"
                )
            try:
                ts = _timestamp(row[0])
            except ValueError as exc:
                raise ConfigError(
                    f"line {line} of {path}: timestamp {row[0]!r} is not unix seconds or "
                    f"an ISO-8601 time ({exc})"
                ) from None
            try:
                o, h, lo, c, v = (float(x) for x in row[1:])
            except ValueError:
                raise ConfigError(
                    f"line {line} of {path}: a price or the volume is not a number"
                ) from None
            if not all(math.isfinite(x) and x > 0 for x in (o, h, lo, c)):
                raise ConfigError(f"line {line} of {path}: prices must be positive numbers")
            if not (math.isfinite(v) and v >= 0):
                raise ConfigError(f"line {line} of {path}: the volume must be 0 or more")
            if not (lo <= min(o, c) and max(o, c) <= h):
                raise ConfigError(
                    f"line {line} of {path}: low {lo:g} and high {h:g} do not bound open and close"
                )
            if out and ts <= out[-1][0]:
                raise ConfigError(
                    f"line {line} of {path}: timestamp {ts} is not after the line before's"
                )
            out.append((ts, c))
    if len(out) < 2:
        raise ConfigError(f"the candle file {path} has fewer than two candles")
    return out


def import_ohlcv(
    csv_path: Path | str,
    out: Path | str,
    *,
    chain_id: int,
    pool: str,
    base: TokenInfo,
    quote: TokenInfo,
    quote_depth: float,
) -> MarketHistory:
    """Candles as one Uniswap V2 pool whose quote reserve stays `quote_depth` whole units and
    whose base reserve makes each candle's close the spot price. Tick n is block n + 1 (the
    candles carry no block numbers), timestamps are the candles', base fee 0."""
    if not (math.isfinite(quote_depth) and quote_depth > 0):
        raise ConfigError("--quote-depth must be a positive number of whole quote tokens")
    if base.address == quote.address:
        raise ConfigError("--base and --quote must be different tokens")
    candles = read_ohlcv(csv_path)
    address = to_checksum_address(pool)
    token0, token1 = sorted((base, quote), key=lambda t: int(t.address, 16))
    depth = Decimal(repr(quote_depth))  # exact: a float times 10**18 is not
    r_quote = int(depth * 10**quote.decimals)

    def reserves(price: float) -> tuple[int, int]:
        with localcontext() as exact:
            exact.prec = 80  # uint112 has 34 digits: no rounding before int()
            r_base = int(depth / Decimal(repr(price)) * 10**base.decimals)
        if not (0 < r_base < 2**112 and 0 < r_quote < 2**112):
            raise ConfigError(f"a close of {price:g} makes a reserve outside uint112")
        return (r_base, r_quote) if token0 is base else (r_quote, r_base)

    r0, r1 = reserves(candles[0][1])
    start = PoolStart(
        address=address,
        token0=token0,
        token1=token1,
        reserve0=r0,
        reserve1=r1,
        timestamp_last=candles[0][0] % 2**32,
        cumulative0=0,
        cumulative1=0,
        total_supply=0,
    )
    rows = []
    for n, (ts, close) in enumerate(candles):
        a, b = reserves(close)
        rows.append(
            TickRow(block=n + 1, timestamp=ts, base_fee=0, pool=address, reserve0=a, reserve1=b)
        )
    meta = HistoryMeta(
        chain_id=chain_id,
        source="ohlcv",
        from_block=1,
        to_block=len(candles),
        pools=[start],
        recorded_at=datetime.now(UTC).isoformat(timespec="seconds"),
        note=f"imported from {Path(csv_path).name}; quote depth {quote_depth:g}",
    )
    return write_history(out, meta, rows)
