"""MultiSendCallOnly's packed batch: operation | to | value | data length | data, per call."""

from __future__ import annotations

from collections.abc import Sequence

from eth_abi import encode as abi_encode

MULTI_SEND_SELECTOR = bytes.fromhex("8d80ff0a")  # multiSend(bytes)


def encode_multisend(calls: Sequence[tuple[str, int, str]]) -> str:
    """(to, value, 0x data) calls -> multiSend(bytes) calldata; every call is a CALL."""
    packed = b""
    for to, value, data in calls:
        body = bytes.fromhex(data[2:])
        packed += (
            b"\x00"
            + bytes.fromhex(to[2:])
            + value.to_bytes(32, "big")
            + len(body).to_bytes(32, "big")
            + body
        )
    return "0x" + (MULTI_SEND_SELECTOR + abi_encode(["bytes"], [packed])).hex()
