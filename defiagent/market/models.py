"""What a strategy sees: snapshots of the market and of the agent's own portfolio.

Amounts are integers in each token's smallest unit. Prices are floats in whole units
("1 WETH = 2000.5 DUSD"): they drive decisions and limits, never the amounts signed.
"""

from __future__ import annotations

import itertools

from pydantic import BaseModel, ConfigDict, Field

from defiagent.protocols.uniswap_v2 import math as v2
from defiagent.types import Address


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TokenInfo(Frozen):
    address: Address
    symbol: str
    decimals: int = Field(ge=0, le=36)


class PoolState(Frozen):
    """A Uniswap V2 pair at one block."""

    address: Address
    token0: Address
    token1: Address
    reserve0: int = Field(ge=0)
    reserve1: int = Field(ge=0)
    block_timestamp_last: int = 0
    total_supply: int = 0  # LP tokens outstanding

    def has(self, token: str) -> bool:
        return token in (self.token0, self.token1)

    def other(self, token: str) -> str:
        if token == self.token0:
            return self.token1
        if token == self.token1:
            return self.token0
        raise ValueError(f"{token} is not in pool {self.address}")

    def reserves_for(self, token_in: str) -> tuple[int, int]:
        """(reserve of token_in, reserve of the other token)."""
        if token_in == self.token0:
            return self.reserve0, self.reserve1
        if token_in == self.token1:
            return self.reserve1, self.reserve0
        raise ValueError(f"{token_in} is not in pool {self.address}")

    def amount_out(self, token_in: str, amount_in: int) -> int:
        r_in, r_out = self.reserves_for(token_in)
        return v2.get_amount_out(amount_in, r_in, r_out)

    def amount_in(self, token_out: str, amount_out: int) -> int:
        r_out, r_in = self.reserves_for(token_out)
        return v2.get_amount_in(amount_out, r_in, r_out)


class PriceQuote(Frozen):
    """One source's price of `base` in `quote` (whole units), and when it was observed."""

    source: str
    base: Address
    quote: Address
    price: float = Field(gt=0)
    observed_at: int  # unix seconds (block timestamp or the feed's updatedAt)


class SourceCheck(Frozen):
    """One reference source's answer for a pool, and its verdict against the pool's spot.

    `answered` is False when the source had nothing to say (no TWAP window yet, no feed for
    the pair, the HTTP API timed out): it then neither counts nor refuses by itself. An
    answer that fails its own checks (a stale or broken round) or disagrees with spot
    refuses the whole pool: a lying source is never outvoted.
    """

    source: str  # e.g. "uniswap-v2-twap", "chainlink", "http:api.example"
    kind: str  # "twap" | "chainlink" | "http"
    onchain: bool
    answered: bool
    price: float | None = None  # whole units of quote per base
    observed_at: int | None = None
    age_seconds: int | None = None
    max_age_seconds: int | None = None
    deviation_bps: float | None = None
    max_deviation_bps: float | None = None
    ok: bool = False
    reason: str = ""
    basis: str = ""  # how the answer was made, e.g. the TWAP's window and where it came from


class PriceCheck(Frozen):
    """Spot and its references compared: the pool may be traded only if the check is ok.

    `reference`, `deviation_bps` and `reference_age_seconds` summarise one reference (the
    first failing one, else the one furthest from spot); `sources` has every source.
    """

    base: Address
    quote: Address
    spot: float | None
    reference: float | None
    deviation_bps: float | None
    reference_age_seconds: int | None
    ok: bool
    reason: str = ""
    sources: list[SourceCheck] = []
    agreeing_sources: int = 0  # spot included
    min_sources: int = 2
    # The fee tier of the pool checked, for pools keyed by pair and fee (Uniswap V3); None
    # for a pool that is the only one of its pair (a Uniswap V2 pair).
    fee: int | None = None


class SwapQuote(Frozen):
    """A swap's quote read from the chain before the guard runs (Uniswap V3's QuoterV2 on
    the fork), for protocols whose price cannot be computed from the snapshot alone.

    `amount` is what is exact (sold for "in", bought for "out"); `quoted` is the other side.
    Only trusted code adds these (the pipeline, between planning and the guard); a strategy
    never sees or sets them.
    """

    venue: str
    exact: str  # "in" | "out"
    path: tuple[Address, ...]  # first sold, last bought
    fees: tuple[int, ...] | None = None
    amount: int = Field(ge=0)
    quoted: int = Field(ge=0)
    source: str = ""  # e.g. "QuoterV2 0x… at block 123"


class MarketSnapshot(Frozen):
    chain_id: int
    block_number: int
    block_timestamp: int
    base_fee_per_gas: int = 0
    tokens: dict[str, TokenInfo] = {}  # checksummed address -> info
    pools: list[PoolState] = []
    references: list[PriceQuote] = []
    price_checks: list[PriceCheck] = []
    numeraire: Address | None = None  # the token values and caps are measured in
    swap_quotes: list[SwapQuote] = []  # quotes read on the fork for the swaps being judged

    def token(self, address: str) -> TokenInfo | None:
        return self.tokens.get(address)

    def pool_for(self, token_x: str, token_y: str) -> PoolState | None:
        for pool in self.pools:
            if pool.has(token_x) and pool.has(token_y) and token_x != token_y:
                return pool
        return None

    def route(self, token_in: str, token_out: str, via: str | None = None) -> list[str] | None:
        """A direct path, else one hop through `via` (e.g. WETH), else None."""
        if self.pool_for(token_in, token_out):
            return [token_in, token_out]
        if (
            via
            and via not in (token_in, token_out)
            and self.pool_for(token_in, via)
            and self.pool_for(via, token_out)
        ):
            return [token_in, via, token_out]
        return None

    def quote_out(self, path: list[str], amount_in: int) -> int | None:
        amount = amount_in
        for a, b in itertools.pairwise(path):
            pool = self.pool_for(a, b)
            if pool is None:
                return None
            try:
                amount = pool.amount_out(a, amount)
            except ValueError:  # an empty pool or nothing in
                return None
        return amount

    def quote_in(self, path: list[str], amount_out: int) -> int | None:
        amount = amount_out
        for a, b in reversed(list(itertools.pairwise(path))):
            pool = self.pool_for(a, b)
            if pool is None:
                return None
            try:
                amount = pool.amount_in(b, amount)
            except ValueError:
                return None
        return amount

    def spot_price(self, base: str, quote: str) -> float | None:
        """Whole units of `quote` per whole unit of `base`, from the direct pool's reserves."""
        pool = self.pool_for(base, quote)
        tb, tq = self.tokens.get(base), self.tokens.get(quote)
        if pool is None or tb is None or tq is None:
            return None
        r_base, r_quote = pool.reserves_for(base)
        if r_base == 0 or r_quote == 0:
            return None
        return (r_quote / 10**tq.decimals) / (r_base / 10**tb.decimals)

    def check_for(self, token_x: str, token_y: str, fee: int | None = None) -> PriceCheck | None:
        """The price check of the pair's pool: the V2 pair when `fee` is None, else the
        pool of that fee tier (Uniswap V3)."""
        for check in self.price_checks:
            if {check.base, check.quote} == {token_x, token_y} and check.fee == fee:
                return check
        return None

    def swap_quote(
        self,
        venue: str,
        exact: str,
        path: tuple[str, ...],
        fees: tuple[int, ...] | None,
        amount: int,
    ) -> int | None:
        """The quote read for exactly this swap before the guard ran, or None."""
        for q in self.swap_quotes:
            if (q.venue, q.exact, q.path, q.fees, q.amount) == (venue, exact, path, fees, amount):
                return q.quoted
        return None


class PortfolioSnapshot(Frozen):
    owner: Address
    block_number: int
    eth_balance: int = Field(ge=0)
    balances: dict[str, int] = {}  # token address -> balance
    allowances: dict[str, int] = {}  # "token:spender" -> allowance

    def balance(self, token: str) -> int:
        return self.balances.get(token, 0)

    def allowance(self, token: str, spender: str) -> int:
        return self.allowances.get(f"{token}:{spender}", 0)
