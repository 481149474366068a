"""Uniswap V3: SwapRouter swaps (exact in and out, single and multi-hop), QuoterV2 quotes, pool TWAPs."""
