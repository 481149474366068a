"""The few Uniswap V3 numbers the devnet and the readers need: fee tiers, full-range ticks,
the initial sqrt price for a ratio of amounts, and a tick as a price."""

from __future__ import annotations

import math

# Fee (hundredths of a bip) -> tick spacing, as UniswapV3Factory 1.0.1 enables them.
FEE_TIERS: dict[int, int] = {500: 10, 3000: 60, 10000: 200}
MIN_TICK, MAX_TICK = -887272, 887272
Q96 = 2**96


def full_range(fee: int) -> tuple[int, int]:
    """The widest (tickLower, tickUpper) a position at this fee tier can take."""
    spacing = FEE_TIERS[fee]
    top = MAX_TICK // spacing * spacing
    return -top, top


def sqrt_price_x96(amount0: int, amount1: int) -> int:
    """sqrt(amount1 / amount0) in Q64.96: the price at which the two amounts are even."""
    return math.isqrt(amount1 * 2**192 // amount0)


def tick_price(tick: float, decimals0: int = 18, decimals1: int = 18) -> float:
    """Whole units of token1 per whole unit of token0 at this (mean) tick."""
    return float(1.0001**tick * 10 ** (decimals0 - decimals1))


def sqrt_price(sqrt_price_x96_: int, decimals0: int = 18, decimals1: int = 18) -> float:
    return float((sqrt_price_x96_ / Q96) ** 2 * 10 ** (decimals0 - decimals1))
