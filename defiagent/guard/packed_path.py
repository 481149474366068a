"""The packed swap path of Uniswap V3 (and its forks): token (20 bytes), fee (3 bytes),
token, fee, token...

exactInput takes it in swap order (the token sold first); exactOutput and
quoteExactOutput take it reversed (the token bought first): the argument roles
`packed-path` and `packed-path-reversed` say which. Decoding is strict: bytes whose length
is not 20 + 23k are not a path, and are refused rather than guessed at.
"""

from __future__ import annotations

from collections.abc import Sequence

from eth_utils import to_checksum_address

ADDRESS, FEE = 20, 3


class PathError(ValueError):
    """The bytes are not a Uniswap V3 path."""


def encode_path(tokens: Sequence[str], fees: Sequence[int]) -> bytes:
    if len(tokens) < 2 or len(fees) != len(tokens) - 1:
        raise PathError(f"a path of {len(tokens)} tokens needs {len(tokens) - 1} fees")
    out = bytes.fromhex(tokens[0].removeprefix("0x"))
    for fee, token in zip(fees, tokens[1:], strict=True):
        if not 0 <= fee < 2**24:
            raise PathError(f"fee {fee} does not fit a uint24")
        out += fee.to_bytes(FEE, "big") + bytes.fromhex(token.removeprefix("0x"))
    return out


def decode_path(data: bytes) -> tuple[list[str], list[int]]:
    """Packed bytes -> (tokens, fees), in the order the bytes hold them."""
    if len(data) < ADDRESS + FEE + ADDRESS or (len(data) - ADDRESS) % (ADDRESS + FEE):
        raise PathError(f"{len(data)} bytes is not a Uniswap V3 path (20 + 23k bytes)")
    tokens: list[str] = [to_checksum_address(data[:ADDRESS])]
    fees: list[int] = []
    at = ADDRESS
    while at < len(data):
        fees.append(int.from_bytes(data[at : at + FEE], "big"))
        tokens.append(to_checksum_address(data[at + FEE : at + FEE + ADDRESS]))
        at += FEE + ADDRESS
    return tokens, fees


def swap_order(data: bytes, *, reversed_: bool) -> tuple[list[str], list[int]]:
    """The path's (tokens, fees) with the token sold first, whichever way it was packed."""
    tokens, fees = decode_path(data)
    if reversed_:
        return tokens[::-1], fees[::-1]
    return tokens, fees
