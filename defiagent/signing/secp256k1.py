"""secp256k1 facts every backend needs: the curve order, low-s, and recovering y-parity."""

from __future__ import annotations

from eth_keys import KeyAPI
from eth_keys.exceptions import BadSignature

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
HALF_N = SECP256K1_N // 2

_keys = KeyAPI()


def in_range(value: int) -> bool:
    return 0 < value < SECP256K1_N


def is_low_s(s: int) -> bool:
    return 0 < s <= HALF_N


def normalize_s(s: int) -> int:
    """Ethereum accepts only s <= n/2 (EIP-2); (r, n - s) is the same signature mirrored."""
    return SECP256K1_N - s if s > HALF_N else s


def recover_address(digest: bytes, y_parity: int, r: int, s: int) -> str | None:
    """The checksummed address that signed `digest`, or None if the signature is invalid."""
    try:
        signature = _keys.Signature(vrs=(y_parity, r, s))
        return signature.recover_public_key_from_msg_hash(digest).to_checksum_address()
    except (BadSignature, ValueError):
        return None


def find_y_parity(digest: bytes, r: int, s: int, address: str) -> int | None:
    """Which recovery id (0 or 1) makes (r, s) recover to `address`; None if neither does.

    KMS returns only (r, s); trying both ids is the standard way to rebuild v.
    """
    for y_parity in (0, 1):
        recovered = recover_address(digest, y_parity, r, s)
        if recovered is not None and recovered.lower() == address.lower():
            return y_parity
    return None
