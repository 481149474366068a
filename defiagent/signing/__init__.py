"""Signers: Ledger, AWS KMS, encrypted keystore; every signature recovered and checked."""
