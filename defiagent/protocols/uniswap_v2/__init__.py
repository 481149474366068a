"""Uniswap V2: Router02 swaps (single and multi-hop) and liquidity, pairs, TWAP, devnet."""
