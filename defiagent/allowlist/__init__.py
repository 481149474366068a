"""The contract allowlist: reviewed, signed entries bound to deployed bytecode."""
