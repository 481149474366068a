"""Mean reversion on one pool: fade moves away from the recent average price.

When the pool's spot price of `base` (in `quote`) is `threshold_bps` above its moving
average, sell `base`; that far below, buy it. Trades are sized in `quote` and capped by
the balance; min-out is the pool quote minus `slippage_bps`. It stays idle while the
market snapshot says the pool's price disagrees with its reference.

The pool is the Uniswap V2 pair of the two tokens, or with `fee` set the Uniswap V3 pool
of that fee tier: its spot is the one its price check read (slot0, checked against the
pool's own TWAP), and its quote is that spot less the pool fee (the agent then reads
QuoterV2 on a fork before anything is signed, and refuses a min-out the pool cannot pay).
"""

from __future__ import annotations

from collections import deque

from pydantic import Field

from defiagent.market.models import MarketSnapshot, PortfolioSnapshot, PriceCheck
from defiagent.strategy.intents import Intent, SwapExactIn
from defiagent.strategy.sdk import Strategy, StrategyParams, run
from defiagent.types import Address, Wei


class MeanReversionParams(StrategyParams):
    base: Address
    quote: Address
    window: int = Field(default=5, ge=2, le=1000)  # ticks in the moving average
    threshold_bps: float = Field(default=100, gt=0)
    trade_size_quote: Wei  # how much quote each trade is worth, in quote's smallest unit
    slippage_bps: float = Field(default=50, ge=0, le=1000)
    deadline_seconds: int = Field(default=300, gt=0, le=3600)
    # A Uniswap V3 fee tier (500 = 0.05%): trade on that V3 pool instead of the V2 pair.
    fee: int | None = Field(default=None, gt=0, lt=1_000_000)


class MeanReversion(Strategy):
    Params = MeanReversionParams

    def __init__(self, params: MeanReversionParams) -> None:
        super().__init__(params)
        self.p: MeanReversionParams = params
        self.history: deque[float] = deque(maxlen=params.window)

    def describe(self) -> str:
        p = self.p
        pool = "the V2 pair" if p.fee is None else f"the V3 pool of fee {p.fee}"
        return (
            f"mean-reversion on {pool}: trade {p.base} against {p.quote} when spot moves "
            f"{p.threshold_bps:.0f} bps from its {p.window}-tick average, "
            f"min-out = quote - {p.slippage_bps:.0f} bps"
        )

    def propose(self, market: MarketSnapshot, portfolio: PortfolioSnapshot) -> list[Intent]:
        p = self.p
        check = market.check_for(p.base, p.quote, p.fee)
        spot = self._spot(market, check)
        if spot is None:
            return []
        average = sum(self.history) / len(self.history) if self.history else None
        self.history.append(spot)
        if average is None or len(self.history) < 2:
            return []
        if check is None or not check.ok:
            return []  # a well-behaved strategy does not trade on a price it cannot trust
        move_bps = (spot - average) / average * 10_000
        if abs(move_bps) < p.threshold_bps:
            return []
        base_info, quote_info = market.token(p.base), market.token(p.quote)
        if base_info is None or quote_info is None:
            return []
        if move_bps > 0:  # base is rich: sell base worth trade_size_quote
            token_in, token_out = p.base, p.quote
            whole_quote = p.trade_size_quote / 10**quote_info.decimals
            amount_in = int(whole_quote / spot * 10**base_info.decimals)
            why = f"spot {spot:.6g} is {move_bps:.0f} bps above its average {average:.6g}: sell"
        else:  # base is cheap: buy it with trade_size_quote
            token_in, token_out = p.quote, p.base
            amount_in = p.trade_size_quote
            why = f"spot {spot:.6g} is {-move_bps:.0f} bps below its average {average:.6g}: buy"
        amount_in = min(amount_in, portfolio.balance(token_in))
        if amount_in <= 0:
            return []
        if p.fee is None:
            quoted = market.quote_out([token_in, token_out], amount_in)
        else:  # spot less the pool's fee; the slippage allowance covers the price impact
            whole_in = amount_in / 10 ** market.tokens[token_in].decimals
            whole_out = whole_in * spot if token_in == p.base else whole_in / spot
            out_decimals = market.tokens[token_out].decimals
            quoted = int(whole_out * (1 - p.fee / 1_000_000) * 10**out_decimals)
        if not quoted:
            return []
        min_out = quoted * int(10_000 - p.slippage_bps) // 10_000
        return [
            SwapExactIn(
                token_in=token_in,
                token_out=token_out,
                amount_in=amount_in,
                min_amount_out=min_out,
                reason=why,
                deadline_seconds=p.deadline_seconds,
                venue="uniswap-v2" if p.fee is None else "uniswap-v3",
                fees=None if p.fee is None else [p.fee],
            )
        ]

    def _spot(self, market: MarketSnapshot, check: PriceCheck | None) -> float | None:
        """Whole `quote` per whole `base`: the V2 pair's reserves, or the V3 pool's check."""
        p = self.p
        if p.fee is None:
            return market.spot_price(p.base, p.quote)
        if check is None or not check.spot:
            return None
        return check.spot if check.base == p.base else 1 / check.spot


if __name__ == "__main__":
    run(MeanReversion)
