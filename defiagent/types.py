"""Small pydantic types shared across boundaries: addresses, hashes, wei amounts."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

from eth_utils import is_address, is_checksum_address, to_checksum_address
from pydantic import AfterValidator, BeforeValidator, Field

from defiagent.errors import ConfigError

UINT256_MAX = 2**256 - 1


def _checksum(value: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not an Ethereum address (0x and 40 hex digits)")
    return _checksum_text(value)


# Cached: every snapshot, quote and intent checks the same few addresses again, and each
# check is a keccak (a backtest makes hundreds of thousands). A bad address raises, which
# lru_cache never stores, so each bad one is refused every time.
@lru_cache(maxsize=65_536)
def _checksum_text(value: str) -> str:
    if not is_address(value):
        hint = "0x and 40 hex digits"
        if isinstance(value, str) and value.lower().endswith(".eth"):
            hint += "; ENS names are not resolved"
        raise ValueError(f"{value!r} is not an Ethereum address ({hint})")
    digits = value[2:]
    # Mixed case is a claimed EIP-55 checksum: a wrong one is a typo, never normalised.
    if digits != digits.lower() and digits != digits.upper() and not is_checksum_address(value):
        raise ValueError(f"{value!r} has a wrong EIP-55 checksum")
    return to_checksum_address(value)


checksum_address = _checksum  # for validators outside the Address type (ValueError)


def parse_address(value: str, what: str) -> str:
    """An address a person typed (an argument, an option), checksummed; a ConfigError naming
    `what` otherwise. Held to the same rule as every model: a wrong EIP-55 checksum is a
    typo, refused, never normalised (eth_utils' is_address alone would accept it)."""
    try:
        return _checksum(value)
    except ValueError as exc:
        raise ConfigError(f"{what}: {exc}") from None


def _hex32(value: str) -> str:
    if isinstance(value, bytes):
        value = "0x" + value.hex()
    value = value.lower()
    if not value.startswith("0x") or len(value) != 66:
        raise ValueError(f"{value!r} is not a 32-byte hex string")
    int(value, 16)
    return value


def _selector(value: str) -> str:
    value = value.lower()
    if not value.startswith("0x") or len(value) != 10:
        raise ValueError(f"{value!r} is not a 4-byte function selector")
    int(value, 16)
    return value


def _int_from_str(value):
    # TOML and JSON carry big integers as strings; accept both, store int.
    if isinstance(value, str):
        return int(value, 0)
    return value


Address = Annotated[str, AfterValidator(_checksum)]
Hash32 = Annotated[str, BeforeValidator(_hex32)]
Selector = Annotated[str, AfterValidator(_selector)]
Wei = Annotated[int, BeforeValidator(_int_from_str), Field(ge=0, le=UINT256_MAX)]
