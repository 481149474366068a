"""WETH9: wrapping and unwrapping the chain's native currency."""
