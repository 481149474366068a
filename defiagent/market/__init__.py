"""Market data: pool reserves read from the chain, reference prices, price sanity checks."""
