"""A local stand-in for mainnet: the real Uniswap V2, WETH9 and OpenZeppelin bytecode."""
