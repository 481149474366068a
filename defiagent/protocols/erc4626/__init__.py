"""ERC-4626 vaults: deposit assets for shares, withdraw assets for shares (OpenZeppelin's)."""
