"""Reference prices, independent of the pool's spot price the strategy trades on.

- A protocol's own on-chain reference for its pools, from its adapter's
  `price_references` (Uniswap V2: `protocols/uniswap_v2/twap.py`, the TWAP of the pair's
  cumulative price accumulators).
- `ChainlinkReference`: AggregatorV3 feeds, every round validated (`market/chainlink.py`).
- `HttpPriceReference` (`market/http_price.py`): an off-chain price API, never enough alone.

Each source's `read` returns a SourceCheck: answered or not (and why), its price, age and
age limit, and `ok=False` with the figures when the answer failed the source's own checks.
`market/sanity.py` compares the answers with spot; callers fail closed on any doubt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from defiagent.errors import DefiagentError
from defiagent.market.chainlink import FeedSpec, RoundData, read_round, round_problem
from defiagent.market.models import PoolState, PriceQuote, SourceCheck, TokenInfo
from defiagent.market.reader import ChainReader

Q112 = 2**112
U256 = 2**256


class ReferenceSource(Protocol):
    name: str
    kind: str  # "twap" | "chainlink" | "http"
    onchain: bool

    def observe(self, reader: ChainReader, pool: PoolState, now: int) -> None: ...

    def read(
        self, base: TokenInfo, quote: TokenInfo, pool: PoolState, now: int
    ) -> SourceCheck | None:
        """This source's answer for the pool at block time `now`; None: not configured for it."""
        ...


class ChainlinkReference:
    """Chainlink AggregatorV3 feeds, one per (base, quote) pair; each round validated."""

    name = "chainlink"
    kind = "chainlink"
    onchain = True

    def __init__(
        self,
        feeds: Sequence[FeedSpec] | Mapping[tuple[str, str], str],
        *,
        max_age_seconds: int = 600,
    ) -> None:
        if isinstance(feeds, Mapping):  # (base, quote) -> address, the default limits
            feeds = [
                FeedSpec(base=b, quote=q, address=a, max_age_seconds=max_age_seconds)
                for (b, q), a in feeds.items()
            ]
        self.specs = list(feeds)
        self._decimals: dict[str, int] = {}
        # (base, quote) -> (spec, round or None, why not read)
        self._last: dict[tuple[str, str], tuple[FeedSpec, RoundData | None, str]] = {}

    def observe(self, reader: ChainReader, pool: PoolState, now: int) -> None:
        for spec in self.specs:
            if not (pool.has(spec.base) and pool.has(spec.quote)):
                continue
            try:
                rd = read_round(reader, spec.address, self._decimals.get(spec.address))
            except DefiagentError as exc:  # a reverting or absent feed: no answer
                self._last[(spec.base, spec.quote)] = (spec, None, str(exc))
                continue
            self._decimals[spec.address] = rd.decimals
            self._last[(spec.base, spec.quote)] = (spec, rd, "")

    def read(
        self, base: TokenInfo, quote: TokenInfo, pool: PoolState, now: int
    ) -> SourceCheck | None:
        inverted = False
        entry = self._last.get((base.address, quote.address))
        if entry is None:
            entry = self._last.get((quote.address, base.address))
            inverted = True
        if entry is None:
            return None
        spec, rd, error = entry
        name = f"{self.name} {spec.address[:10]}"
        if rd is None:
            return SourceCheck(
                source=name,
                kind=self.kind,
                onchain=True,
                answered=False,
                max_age_seconds=spec.max_age_seconds,
                reason=f"the feed could not be read: {error}",
            )
        problem = round_problem(rd, now, spec)
        price = None
        if rd.answer > 0:
            price = 1 / rd.price if inverted else rd.price
        return SourceCheck(
            source=name,
            kind=self.kind,
            onchain=True,
            answered=True,
            price=price,
            observed_at=rd.updated_at,
            age_seconds=now - rd.updated_at if rd.updated_at else None,
            max_age_seconds=spec.max_age_seconds,
            ok=problem is None,
            reason=problem or "",
        )

    def quote(
        self, base: TokenInfo, quote: TokenInfo, pool: PoolState, now: int
    ) -> PriceQuote | None:
        """The validated price only (None if absent or refused)."""
        check = self.read(base, quote, pool, now)
        if check is None or not check.ok or check.price is None:
            return None
        return PriceQuote(
            source=self.name,
            base=base.address,
            quote=quote.address,
            price=check.price,
            observed_at=check.observed_at or 0,
        )
