"""DER as AWS KMS speaks it: SubjectPublicKeyInfo in, ECDSA-Sig-Value out."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from eth_utils import keccak, to_checksum_address

from defiagent.signing.secp256k1 import in_range


class MalformedDer(ValueError):
    """The bytes are not the DER structure they should be."""


def uncompressed_point(spki_der: bytes) -> bytes:
    """The 65-byte 0x04||X||Y point of a secp256k1 public key in DER SubjectPublicKeyInfo."""
    try:
        key = serialization.load_der_public_key(spki_der)
    except (ValueError, TypeError) as exc:
        raise MalformedDer(f"not a DER public key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256K1):
        raise MalformedDer("the public key is not on secp256k1")
    return key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def address_from_point(point: bytes) -> str:
    """Ethereum address: the last 20 bytes of keccak(X||Y)."""
    if len(point) != 65 or point[0] != 0x04:
        raise MalformedDer("the public key is not an uncompressed point")
    return to_checksum_address(keccak(point[1:])[-20:])


def address_from_spki(spki_der: bytes) -> str:
    return address_from_point(uncompressed_point(spki_der))


def decode_signature(der: bytes) -> tuple[int, int]:
    """(r, s) from a DER ECDSA-Sig-Value, refusing trailing bytes and out-of-range values."""
    try:
        r, s = decode_dss_signature(der)
    except (ValueError, TypeError) as exc:
        raise MalformedDer(f"not a DER ECDSA signature: {exc}") from exc
    if not (in_range(r) and in_range(s)):
        raise MalformedDer("r or s is outside the curve order")
    return r, s
