"""Runtime bytecode comparison (metadata tail and immutables aside) and opcode scanning."""

from __future__ import annotations

from typing import Literal

from eth_utils import keccak

from defiagent.vetting.compiler import CompiledContract

MatchLevel = Literal["full", "partial", "mismatch"]

SELFDESTRUCT = 0xFF
DELEGATECALL = 0xF4
CALLCODE = 0xF2


def codehash(code: bytes) -> str:
    return "0x" + keccak(code).hex()


def metadata_length(code: bytes) -> int:
    """Bytes of solc's CBOR metadata tail (with its 2-byte length), 0 if there is none."""
    if len(code) < 2:
        return 0
    length = int.from_bytes(code[-2:], "big")
    start = len(code) - 2 - length
    # A CBOR map header (0xa1..0xb7) opens solc's metadata; anything else is code or data.
    if length == 0 or start < 0 or not 0xA1 <= code[start] <= 0xB7:
        return 0
    return length + 2


def strip_metadata(code: bytes) -> bytes:
    n = metadata_length(code)
    return code[:-n] if n else code


def _mask(code: bytearray, ranges: list[tuple[int, int]]) -> None:
    for start, length in ranges:
        code[start : start + length] = b"\0" * length


def _compiled_bytes(compiled: CompiledContract) -> bytes:
    hexcode = compiled.runtime
    for start, length in compiled.links:  # unlinked "__$...$__" placeholders: zero them
        hexcode = hexcode[: 2 * start] + "00" * length + hexcode[2 * (start + length) :]
    return bytes.fromhex(hexcode)


def compare(deployed: bytes, compiled: CompiledContract) -> MatchLevel:
    """full: identical but for immutables and library addresses; partial: only the metadata
    differs (other file names, comments, settings that do not change code); else mismatch."""
    if not compiled.runtime:
        return "mismatch"
    ours = bytearray(_compiled_bytes(compiled))
    theirs = bytearray(deployed)
    ranges = list(compiled.immutables) + list(compiled.links)
    if ranges and len(ours) == len(theirs):
        _mask(ours, ranges)
        _mask(theirs, ranges)
    if ours == theirs:
        return "full"
    if compiled.metadata_ranges and len(ours) == len(theirs):
        _mask(ours, compiled.metadata_ranges)
        _mask(theirs, compiled.metadata_ranges)
        if ours == theirs:
            return "partial"
    a, b = strip_metadata(bytes(ours)), strip_metadata(bytes(theirs))
    if a and a == b:
        return "partial"
    return "mismatch"


def opcodes(code: bytes) -> set[int]:
    """Opcodes present in the code part (PUSH data and the metadata tail skipped)."""
    body = strip_metadata(code)
    seen: set[int] = set()
    i = 0
    while i < len(body):
        op = body[i]
        seen.add(op)
        i += 1 + (op - 0x5F if 0x60 <= op <= 0x7F else 0)
    return seen
