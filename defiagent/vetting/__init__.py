"""Vetting contracts: the solc toolchain, Slither, source verification, audit checks."""
