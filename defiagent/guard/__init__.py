"""The guard: small pure rules, one per module, composed into one Decision per call."""
