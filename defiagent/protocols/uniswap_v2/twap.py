"""Uniswap V2's price reference: the pair's own time-weighted average price.

From its cumulative price accumulators, which a flash manipulation inside one block does not
move. The window starts at a past block read from the chain (the accumulators as they were
then), so a manipulation before the agent started is seen and the first tick has a
reference; only where the node does not serve that state does it fall back to the agent's
own observations since it started. Each answer says which (`SourceCheck.basis`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from defiagent.errors import DefiagentError
from defiagent.market.models import PoolState, PriceQuote, SourceCheck, TokenInfo
from defiagent.market.reader import ChainReader
from defiagent.market.references import Q112, U256


@dataclass(frozen=True)
class _Observation:
    timestamp: int
    cumulative0: int
    cumulative1: int
    block: int | None = None  # set when read from the chain's history, not observed live


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
    kind = "twap"
    onchain = True

    def __init__(
        self,
        *,
        min_window_seconds: int = 60,
        max_window_seconds: int = 3600,
        max_age_seconds: int = 600,
    ) -> None:
        self.min_window = min_window_seconds
        self.max_window = max_window_seconds
        self.max_age = max_age_seconds
        self._obs: dict[str, deque[_Observation]] = {}
        self.history: dict[str, str] = {}  # pool -> what the chain-history seed found
        self._basis = ""

    def observe(self, reader: ChainReader, pool: PoolState, now: int) -> None:
        if pool.address not in self.history:
            self.history[pool.address] = self._seed_from_chain(reader, pool, now)
        c0, c1 = reader.cumulative_prices(pool.address)
        self.record(pool, c0, c1, now)

    def _seed_from_chain(self, reader: ChainReader, pool: PoolState, now: int) -> str:
        """The accumulators at the earliest block within `max_window` where the pair has
        liquidity (binary searches over block timestamps, then reserves; before liquidity
        the accumulators do not move, which would bias the average): the window's start, as
        the chain recorded it. Returns what happened, for the answer's basis."""
        w3 = reader.w3
        try:
            head = reader.block if reader.block is not None else int(w3.eth.block_number)

            def ts(n: int) -> int:
                return int(w3.eth.get_block(n)["timestamp"])

            def first(lo: int, hi: int, ok: Callable[[int], bool]) -> int:  # first where ok
                while lo < hi:
                    mid = (lo + hi) // 2
                    if ok(mid):
                        hi = mid
                    else:
                        lo = mid + 1
                return lo

            start = first(0, head, lambda n: ts(n) >= now - self.max_window)

            def live(n: int) -> bool:
                try:
                    p = reader.at(n).pool(pool.address)
                except DefiagentError:  # no pair there yet
                    return False
                return p.reserve0 > 0 and p.reserve1 > 0

            start = first(start, head, live)
            past = reader.at(start)
            then_pool, then = past.pool(pool.address), ts(start)
            if now - then < self.min_window:
                return (
                    f"no {self.min_window}s of this pool's history on the chain (a younger "
                    "pool, or a node that serves no past state)"
                )
            c0, c1 = past.cumulative_prices(pool.address)
        except Exception as exc:  # an RPC without historical state: our own observations
            return f"the node serves no past state ({type(exc).__name__})"
        c0, c1 = counterfactual_cumulatives(then_pool, c0, c1, then)
        self._obs.setdefault(pool.address, deque()).appendleft(
            _Observation(then, c0, c1, block=start)
        )
        return f"from block {start}"

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
        # The longest window within [min_window, max_window]: after a gap (a restart, a
        # quiet chain) the oldest point may be too old while a newer one still fits.
        start = next(
            (
                o
                for o in obs
                if self.min_window <= latest.timestamp - o.timestamp <= self.max_window
            ),
            None,
        )
        if start is None:
            return None
        self._basis = (
            f"{latest.timestamp - start.timestamp}s window from the pool's accumulators at "
            f"block {start.block} (chain history)"
            if start.block is not None
            else f"{latest.timestamp - start.timestamp}s window from the agent's own "
            "observations since it started"
        )
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

    def read(
        self, base: TokenInfo, quote: TokenInfo, pool: PoolState, now: int
    ) -> SourceCheck | None:
        q = self.quote(base, quote, pool, now)
        if q is None:
            history = self.history.get(pool.address, "")
            return SourceCheck(
                source=self.name,
                kind=self.kind,
                onchain=True,
                answered=False,
                max_age_seconds=self.max_age,
                reason=f"no TWAP window yet (needs {self.min_window}s of observations"
                + (f"; {history}" if history and not history.startswith("from") else "")
                + ")",
            )
        return SourceCheck(
            source=self.name,
            kind=self.kind,
            onchain=True,
            answered=True,
            price=q.price,
            observed_at=q.observed_at,
            age_seconds=max(0, now - q.observed_at),
            max_age_seconds=self.max_age,
            ok=True,
            basis=self._basis,
        )
