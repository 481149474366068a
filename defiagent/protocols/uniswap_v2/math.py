"""Uniswap V2 constant-product math, exactly as UniswapV2Library computes it (0.3% fee)."""

from __future__ import annotations


def get_amount_out(amount_in: int, reserve_in: int, reserve_out: int) -> int:
    if amount_in <= 0:
        raise ValueError("amount_in must be positive")
    if reserve_in <= 0 or reserve_out <= 0:
        raise ValueError("the pool has no liquidity")
    amount_in_with_fee = amount_in * 997
    return (amount_in_with_fee * reserve_out) // (reserve_in * 1000 + amount_in_with_fee)


def get_amount_in(amount_out: int, reserve_in: int, reserve_out: int) -> int:
    if amount_out <= 0:
        raise ValueError("amount_out must be positive")
    if reserve_in <= 0 or reserve_out <= amount_out:
        raise ValueError("the pool cannot pay that much out")
    return (reserve_in * amount_out * 1000) // ((reserve_out - amount_out) * 997) + 1


def quote(amount_a: int, reserve_a: int, reserve_b: int) -> int:
    """The amount of B worth `amount_a` of A at the pool's current ratio (no fee)."""
    if reserve_a <= 0 or reserve_b <= 0:
        raise ValueError("the pool has no liquidity")
    return amount_a * reserve_b // reserve_a
