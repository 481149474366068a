"""Build the market and portfolio snapshots a strategy sees, from the chain, at one block."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from web3 import Web3

from defiagent.errors import InfraError
from defiagent.market.models import (
    MarketSnapshot,
    PoolState,
    PortfolioSnapshot,
    PriceCheck,
    PriceQuote,
    SourceCheck,
    TokenInfo,
)
from defiagent.market.reader import ChainReader
from defiagent.market.references import ReferenceSource
from defiagent.market.sanity import PriceSanityLimits, check_sources


class MarketObserver:
    """Reads the watched pools and tokens; keeps the reference sources' history across ticks.

    `references` are checked against each pool's spot (`market/sanity.py`); `reference`
    (one source) is kept for older callers.
    """

    def __init__(
        self,
        w3: Web3,
        *,
        pools: list[str],
        tokens: list[str],
        references: Sequence[ReferenceSource] | None = None,
        reference: ReferenceSource | None = None,
        limits: PriceSanityLimits | None = None,
        numeraire: str | None = None,
        protocol_checks: Callable[[int, int, dict[str, TokenInfo]], Sequence[PriceCheck]]
        | None = None,
    ) -> None:
        self.w3 = w3
        self.pools = [Web3.to_checksum_address(p) for p in pools]
        self.tokens = [Web3.to_checksum_address(t) for t in tokens]
        self.references = list(references or []) + ([reference] if reference else [])
        self.limits = limits or PriceSanityLimits()
        self.numeraire = Web3.to_checksum_address(numeraire) if numeraire else None
        self._token_info: dict[str, TokenInfo] = {}
        # (block, block time, tokens) -> the price checks of pools that are not V2 pairs
        # (each protocol's `price_checks`: Uniswap V3 pools, keyed by their fee tier)
        self.protocol_checks = protocol_checks

    def _block(self, block: int | None) -> dict:
        try:
            return dict(self.w3.eth.get_block(block if block is not None else "latest"))
        except Exception as exc:
            raise InfraError(f"reading the latest block failed: {exc}") from exc

    def token_info(self, reader: ChainReader, address: str) -> TokenInfo:
        if address not in self._token_info:
            self._token_info[address] = reader.token(address)
        return self._token_info[address]

    def snapshot(self, block: int | None = None) -> MarketSnapshot:
        header = self._block(block)
        number, now = int(header["number"]), int(header["timestamp"])
        reader = ChainReader(self.w3, number)
        pools: list[PoolState] = [reader.pool(p) for p in self.pools]
        tokens: dict[str, TokenInfo] = {t: self.token_info(reader, t) for t in self.tokens}
        for pool in pools:
            for t in (pool.token0, pool.token1):
                if t not in tokens:
                    tokens[t] = self.token_info(reader, t)
        quotes: list[PriceQuote] = []
        checks = []
        for pool in pools:
            base, quote = tokens[pool.token0], tokens[pool.token1]
            answers: list[SourceCheck] = []
            for source in self.references:
                source.observe(reader, pool, now)
                answer = source.read(base, quote, pool, now)
                if answer is None:
                    answer = SourceCheck(
                        source=source.name,
                        kind=source.kind,
                        onchain=source.onchain,
                        answered=False,
                        reason=f"not configured for {base.symbol}/{quote.symbol}",
                    )
                answers.append(answer)
                if answer.answered and answer.ok and answer.price:
                    quotes.append(
                        PriceQuote(
                            source=answer.source,
                            base=base.address,
                            quote=quote.address,
                            price=answer.price,
                            observed_at=answer.observed_at or 0,
                        )
                    )
            spot = _spot(pool, base, quote)
            checks.append(check_sources(base.address, quote.address, spot, answers, self.limits))
        if self.protocol_checks is not None:
            checks.extend(self.protocol_checks(number, now, tokens))
        return MarketSnapshot(
            chain_id=self.w3.eth.chain_id,
            block_number=number,
            block_timestamp=now,
            base_fee_per_gas=int(header.get("baseFeePerGas") or 0),
            tokens=tokens,
            pools=pools,
            references=quotes,
            price_checks=checks,
            numeraire=self.numeraire,
        )

    def portfolio(
        self, owner: str, *, spenders: list[str], block: int | None = None
    ) -> PortfolioSnapshot:
        owner = Web3.to_checksum_address(owner)
        number = block if block is not None else self.w3.eth.block_number
        reader = ChainReader(self.w3, number)
        tokens = list(dict.fromkeys(self.tokens + self.pools))  # LP tokens are ERC-20 too
        balances = {t: reader.balance_of(t, owner) for t in tokens}
        allowances = {f"{t}:{s}": reader.allowance(t, owner, s) for t in tokens for s in spenders}
        return PortfolioSnapshot(
            owner=owner,
            block_number=number,
            eth_balance=reader.eth_balance(owner),
            balances=balances,
            allowances=allowances,
        )


def _spot(pool: PoolState, base: TokenInfo, quote: TokenInfo) -> float | None:
    r_base, r_quote = pool.reserves_for(base.address)
    if not r_base or not r_quote:
        return None
    return (r_quote / 10**quote.decimals) / (r_base / 10**base.decimals)


def numeraire_prices(market: MarketSnapshot, *, weth: str | None = None) -> dict[str, float]:
    """Numeraire per smallest unit of each token ("ETH" priced as WETH), from spot prices.

    Only pools whose sanity check passed are used; a token without a sane route to the
    numeraire gets no price, and limits that need one refuse (fail closed).
    """
    num = market.numeraire
    if num is None or num not in market.tokens:
        return {}
    sane = {(c.base, c.quote) for c in market.price_checks if c.ok}
    sane |= {(q, b) for b, q in sane}
    whole: dict[str, float] = {num: 1.0}
    # Two passes: direct pools to the numeraire, then one hop through a priced token.
    for _ in range(2):
        for pool in market.pools:
            for token in (pool.token0, pool.token1):
                other = pool.other(token)
                if token in whole or other not in whole or (token, other) not in sane:
                    continue
                spot = market.spot_price(token, other)
                if spot:
                    whole[token] = spot * whole[other]
    prices = {
        t: p / 10 ** market.tokens[t].decimals for t, p in whole.items() if t in market.tokens
    }
    # LP tokens: a share of both reserves, when both sides are priced.
    for pool in market.pools:
        p0, p1 = prices.get(pool.token0), prices.get(pool.token1)
        if (
            pool.total_supply
            and p0 is not None
            and p1 is not None
            and (pool.token0, pool.token1) in sane
        ):
            prices[pool.address] = (pool.reserve0 * p0 + pool.reserve1 * p1) / pool.total_supply
    if weth and weth in prices:
        prices["ETH"] = prices[weth]
    return prices
