"""Reference prices, independent of the pool's spot price the strategy trades on.

- `TwapReference`: the pool's own time-weighted average price from Uniswap V2's cumulative
  price accumulators (a flash manipulation inside one block does not move it).
- `ChainlinkReference`: an AggregatorV3 feed (price and its `updatedAt`).
Each source returns a PriceQuote or None ("no reference yet"): callers fail closed on None.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Protocol

from defiagent.market.models import PoolState, PriceQuote, TokenInfo
from defiagent.market.reader import ChainReader

Q112 = 2**112
U256 = 2**256


class ReferenceSource(Protocol):
    name: str

    def observe(self, reader: ChainReader, pool: PoolState, now: int) -> None: ...

    def quote(
        self, base: TokenInfo, quote: TokenInfo, pool: PoolState, now: int
    ) -> PriceQuote | None: ...


@dataclass(frozen=True)
class _Observation:
    timestamp: int
    cumulative0: int
    cumulative1: int


def counterfactual_cumulatives(
    pool: PoolState, cumulative0: int, cumulative1: int, now: int
) -> tuple[int, int]:
    """The accumulators as if the pair were synced at `now` (UniswapV2OracleLibrary)."""
    elapsed = (now - pool.block_timestamp_last) % 2**32
    if elapsed and pool.reserve0 and pool.reserve1:
        cumulative0 = (cumulative0 + (pool.reserve1 * Q112 // pool.reserve0) * elapsed) % U256
        cumulative1 = (cumulative1 + (pool.reserve0 * Q112 // pool.reserve1) * elapsed) % U256
    return cumulative0, cumulative1


class TwapReference:
    """TWAP over the oldest kept observation at least `min_window` seconds old."""

    name = "uniswap-v2-twap"

    def __init__(self, *, min_window_seconds: int = 60, max_window_seconds: int = 3600) -> None:
        self.min_window = min_window_seconds
        self.max_window = max_window_seconds
        self._obs: dict[str, deque[_Observation]] = {}

    def observe(self, reader: ChainReader, pool: PoolState, now: int) -> None:
        c0, c1 = reader.cumulative_prices(pool.address)
        self.record(pool, c0, c1, now)

    def record(self, pool: PoolState, c0: int, c1: int, now: int) -> None:
        c0, c1 = counterfactual_cumulatives(pool, c0, c1, now)
        obs = self._obs.setdefault(pool.address, deque())
        if obs and obs[-1].timestamp >= now:
            return
        obs.append(_Observation(now, c0, c1))
        while len(obs) > 2 and now - obs[1].timestamp >= self.max_window:
            obs.popleft()

    def quote(
        self, base: TokenInfo, quote: TokenInfo, pool: PoolState, now: int
    ) -> PriceQuote | None:
        obs = self._obs.get(pool.address)
        if not obs or len(obs) < 2:
            return None
        latest = obs[-1]
        start = next((o for o in obs if latest.timestamp - o.timestamp >= self.min_window), None)
        if start is None or latest.timestamp - start.timestamp > self.max_window:
            return None
        elapsed = latest.timestamp - start.timestamp
        if base.address == pool.token0:
            raw = ((latest.cumulative0 - start.cumulative0) % U256) / elapsed / Q112
        else:
            raw = ((latest.cumulative1 - start.cumulative1) % U256) / elapsed / Q112
        if raw <= 0:
            return None
        price = raw * 10**base.decimals / 10**quote.decimals
        return PriceQuote(
            source=self.name,
            base=base.address,
            quote=quote.address,
            price=price,
            observed_at=latest.timestamp,
        )


class ChainlinkReference:
    """Chainlink AggregatorV3 feeds, one per (base, quote) pair, configured by address."""

    name = "chainlink"

    def __init__(self, feeds: dict[tuple[str, str], str]) -> None:
        self.feeds = feeds  # (base, quote) -> feed address
        self._last: dict[tuple[str, str], tuple[float, int]] = {}

    def observe(self, reader: ChainReader, pool: PoolState, now: int) -> None:
        for (base, quote_token), feed in self.feeds.items():
            if pool.has(base) and pool.has(quote_token):
                answer, decimals, updated_at = reader.latest_round(feed)
                if answer > 0:
                    self._last[(base, quote_token)] = (answer / 10**decimals, updated_at)

    def quote(
        self, base: TokenInfo, quote: TokenInfo, pool: PoolState, now: int
    ) -> PriceQuote | None:
        if (base.address, quote.address) in self._last:
            price, updated = self._last[(base.address, quote.address)]
        elif (quote.address, base.address) in self._last:
            inverse, updated = self._last[(quote.address, base.address)]
            price = 1 / inverse
        else:
            return None
        return PriceQuote(
            source=self.name,
            base=base.address,
            quote=quote.address,
            price=price,
            observed_at=updated,
        )
