"""Local chains (anvil) and the JSON-RPC transport."""
