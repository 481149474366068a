"""The Ledger Ethereum app's APDU protocol, host side: commands, chunking, status words.

Reference: LedgerHQ app-ethereum, doc/ethapp.adoc. Every command is
CLA=0xE0 INS P1 P2 Lc data, at most 255 data bytes; long payloads are sent as a first
chunk (P1=0x00) followed by continuation chunks (P1=0x80).
"""

from __future__ import annotations

import re
import struct

from rlp.codec import consume_length_prefix

from defiagent.errors import ConfigError, DefiagentError, InfraError, Refused

CLA = 0xE0
INS_GET_PUBLIC_ADDRESS = 0x02
INS_SIGN_TRANSACTION = 0x04
INS_GET_APP_CONFIGURATION = 0x06
INS_SIGN_PERSONAL_MESSAGE = 0x08
INS_SIGN_EIP712_HASHED = 0x0C

P1_FIRST_CHUNK = 0x00
P1_MORE_CHUNK = 0x80
P1_NO_CONFIRM = 0x00
P1_CONFIRM = 0x01
P2_NO_CHAINCODE = 0x00
P2_EIP712_HASHED = 0x00

MAX_CHUNK = 255
MAX_PATH_DEPTH = 10  # the app refuses deeper paths
DEFAULT_PATH = "44'/60'/0'/0/0"
HARDENED = 0x80000000

SW_OK = 0x9000

# --- errors the device can answer with --------------------------------------------------


class LedgerNotFound(InfraError):
    """No Ledger is connected (or the host cannot open it)."""


class LedgerLocked(InfraError):
    """The device is locked (PIN screen or screen saver)."""


class LedgerAppNotOpen(InfraError):
    """The device is on its dashboard or in another app."""


class LedgerTimeout(InfraError):
    """The device did not answer in time (often: nobody pressed the buttons)."""


class LedgerRejected(Refused):
    """The person at the device rejected the request."""


class LedgerDataRefused(Refused):
    """The Ethereum app refused the data (0x6A80)."""


_LOCKED = {0x5515, 0x6B0C, 0x6804, 0x6982, 0x530C}
_APP_NOT_OPEN = {0x6D00, 0x6D02, 0x6E00, 0x6E01, 0x6511}


def error_for_status(sw: int, action: str) -> DefiagentError:
    """One clear sentence for a status word; `action` says what was being asked."""
    if sw == 0x6985:
        return LedgerRejected(f"{action} was rejected on the Ledger")
    if sw in _LOCKED:
        return LedgerLocked(
            f"the Ledger is locked (status 0x{sw:04X})", remedy="unlock it with its PIN and retry"
        )
    if sw in _APP_NOT_OPEN:
        return LedgerAppNotOpen(
            f"the Ethereum app is not open on the Ledger (status 0x{sw:04X})",
            remedy="open the Ethereum app and retry",
        )
    if sw == 0x6A80:
        return LedgerDataRefused(
            f"the Ledger's Ethereum app refused the data for {action}",
            remedy="for a contract call, enable Blind signing in the app's settings",
        )
    return InfraError(f"the Ledger answered {action} with unexpected status 0x{sw:04X}")


# --- encoding -------------------------------------------------------------------------

_PATH_RE = re.compile(r"^(m/)?(\d+['hH]?)(/\d+['hH]?)*$")


def parse_path(path: str) -> list[int]:
    """A BIP-32 path like "44'/60'/0'/0/0" (or "m/44h/60h/0h/0/0") as 32-bit integers."""
    text = path.strip()
    if not _PATH_RE.match(text):
        raise ConfigError(f"the derivation path {path!r} is not a BIP-32 path like 44'/60'/0'/0/0")
    parts = text.removeprefix("m/").split("/")
    if len(parts) > MAX_PATH_DEPTH:
        raise ConfigError(f"the derivation path {path!r} is deeper than {MAX_PATH_DEPTH} levels")
    out = []
    for part in parts:
        hardened = part[-1] in "'hH"
        index = int(part.rstrip("'hH"))
        if index >= HARDENED:
            raise ConfigError(f"the derivation path {path!r} has an index out of range")
        out.append(index | HARDENED if hardened else index)
    return out


def encode_path(path: str) -> bytes:
    """The app's path encoding: one byte of depth, then each index as 4 bytes big-endian."""
    indexes = parse_path(path)
    return bytes([len(indexes)]) + b"".join(struct.pack(">I", i) for i in indexes)


def command(ins: int, p1: int, p2: int, data: bytes = b"") -> bytes:
    if len(data) > MAX_CHUNK:
        raise ValueError("APDU data longer than 255 bytes")
    return bytes([CLA, ins, p1, p2, len(data)]) + data


def split_chunks(payload: bytes, *, avoid_boundary: int | None = None) -> list[bytes]:
    """Cut `payload` into <=255-byte chunks, never ending a chunk at offset `avoid_boundary`.

    The app decides that a legacy transaction without its EIP-155 tail (chainId, 0, 0) is
    complete when a chunk ends right after the data field; it would then sign it as a
    chain-less transaction. So no chunk may end exactly there (as Ledger's own hw-app-eth
    also ensures).
    """
    chunks, offset = [], 0
    while offset < len(payload):
        end = min(offset + MAX_CHUNK, len(payload))
        if end == avoid_boundary and end < len(payload):
            end -= 1
        chunks.append(payload[offset:end])
        offset = end
    return chunks


def legacy_eip155_offset(preimage: bytes) -> int:
    """Offset, within an unsigned legacy tx's RLP, where the EIP-155 tail (chainId) starts."""
    _, _, _, list_start = consume_length_prefix(preimage, 0)
    offset: int = list_start  # rlp is untyped
    for _ in range(6):  # nonce, gasPrice, gas, to, value, data
        _, _, length, start = consume_length_prefix(preimage, offset)
        offset = start + length
    return offset


# --- decoding -------------------------------------------------------------------------


def parse_public_address(response: bytes) -> tuple[bytes, str]:
    """(uncompressed public key, address text) from a GET_ETH_PUBLIC_ADDRESS answer."""
    try:
        key_len = response[0]
        pubkey = bytes(response[1 : 1 + key_len])
        addr_len = response[1 + key_len]
        address = bytes(response[2 + key_len : 2 + key_len + addr_len]).decode("ascii")
    except (IndexError, UnicodeDecodeError) as exc:
        raise InfraError("the Ledger's address answer is malformed") from exc
    if len(pubkey) != 65 or len(address) != 40:
        raise InfraError("the Ledger's address answer has the wrong lengths")
    return pubkey, "0x" + address


def parse_vrs(response: bytes) -> tuple[int, int, int]:
    """(v byte, r, s) from a signing answer: v(1) || r(32) || s(32)."""
    if len(response) != 65:
        raise InfraError(f"the Ledger's signature answer is {len(response)} bytes, not 65")
    return (
        response[0],
        int.from_bytes(response[1:33], "big"),
        int.from_bytes(response[33:65], "big"),
    )


def parse_app_configuration(response: bytes) -> tuple[int, tuple[int, int, int]]:
    """(flags, (major, minor, patch)) from GET_APP_CONFIGURATION."""
    if len(response) < 4:
        raise InfraError("the Ledger's app configuration answer is malformed")
    return response[0], (response[1], response[2], response[3])
