"""ERC-20 tokens: the approve the other protocols' plans begin with, and `approve` intents."""
