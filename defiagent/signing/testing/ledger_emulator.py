"""An emulated Ledger running the Ethereum app, behind ledgerblue's Dongle interface.

For tests and demos only: it holds a real secp256k1 seed in memory, which is exactly what a
real device exists to avoid. No Ethereum app binary for Speculos can be had here, so this
reimplements the app's APDU handling as documented in LedgerHQ app-ethereum (doc/ethapp.adoc)
and as its parser behaves:

- GET_ETH_PUBLIC_ADDRESS (0x02): P1 0x00 silent / 0x01 confirm on screen, P2 0x00/0x01
  chain code; answers len||pubkey||len||address-text[||chaincode].
- SIGN_ETH_TRANSACTION (0x04): P1 0x00 first chunk (path then tx), 0x80 continuation.
  The chunks are reassembled as a stream; the transaction is complete when its RLP list is,
  or (legacy only) when a chunk ends right after the data field: the app then treats it as
  a pre-EIP-155 transaction. The keccak of exactly the bytes received is signed.
  v is the y-parity for typed transactions, the low byte of chainId*2+35+parity for legacy
  ones, 27+parity without a chain id.
- SIGN_ETH_PERSONAL_MESSAGE (0x08): path, 4-byte length, message over chunks; EIP-191.
- SIGN_EIP712_MESSAGE (0x0C), hashed mode (P2 0x00): path, domain hash, message hash.
- GET_APP_CONFIGURATION (0x06): flags, major, minor, patch.

Status words: 0x9000 ok, 0x6985 rejected by the user, 0x6A80 bad data (or contract data
with blind signing off), 0x6B00 bad P1/P2, 0x6700 bad length, 0x6D00 unknown INS,
0x6E00 bad CLA, 0x5515 locked, 0x6E01 app not open, 0x6501 unsupported tx type.
Errors are raised as ledgerblue's CommException with `.sw`, as its HID transport does.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import rlp
from eth_account.hdaccount import generate_mnemonic, key_from_seed, seed_from_mnemonic
from eth_account.types import Language
from eth_keys import KeyAPI
from eth_utils import keccak, to_checksum_address
from ledgerblue.commException import CommException
from rlp.codec import consume_length_prefix
from rlp.exceptions import DecodingError

UserAction = Literal["approve", "reject", "ignore"]

SW_OK = 0x9000
SW_REJECTED = 0x6985
SW_BAD_DATA = 0x6A80
SW_BAD_P1P2 = 0x6B00
SW_BAD_LENGTH = 0x6700
SW_BAD_INS = 0x6D00
SW_BAD_CLA = 0x6E00
SW_LOCKED = 0x5515
SW_APP_NOT_OPEN = 0x6E01
SW_TX_TYPE_UNSUPPORTED = 0x6501
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_keys = KeyAPI()


class _Ignored(Exception):
    """The person never pressed a button."""


@dataclass
class Review:
    """What the device showed for approval."""

    kind: str
    fields: dict[str, Any]


@dataclass
class _Stream:
    ins: int
    path: str
    data: bytearray = field(default_factory=bytearray)
    declared_length: int | None = None  # personal messages announce their length


class EmulatedLedger:
    """A Ledger with the Ethereum app open, driven through `exchange(apdu, timeout)`."""

    def __init__(
        self,
        mnemonic: str | None = None,
        *,
        passphrase: str = "",
        app_version: tuple[int, int, int] = (1, 13, 0),
        blind_signing: bool = True,
    ) -> None:
        self._seed = seed_from_mnemonic(
            mnemonic or generate_mnemonic(12, Language.ENGLISH), passphrase
        )
        self.app_version = app_version
        self.blind_signing = blind_signing
        self.locked = False
        self.app_open = True
        self.user: UserAction | Callable[[Review], UserAction] = "approve"
        self.reviews: list[Review] = []
        self.apdus: list[bytes] = []
        # Tampering, for tests of the host's checks: a device that signs with another key,
        # or returns the mirrored high-s form of each signature.
        self.sign_with_key: bytes | None = None
        self.high_s = False
        self._stream: _Stream | None = None

    # --- keys -----------------------------------------------------------------------

    def _key(self, path: str) -> Any:
        return _keys.PrivateKey(self.sign_with_key or key_from_seed(self._seed, path))

    def address_at(self, path: str = "m/44'/60'/0'/0/0") -> str:
        """The address the device derives at `path` (for tests to compare with)."""
        if not path.startswith("m/"):
            path = "m/" + path
        return _keys.PrivateKey(key_from_seed(self._seed, path)).public_key.to_checksum_address()

    def _sign(self, path: str, digest: bytes) -> tuple[int, int, int]:
        signature = self._key(path).sign_msg_hash(digest)
        y_parity, r, s = signature.vrs
        if self.high_s:
            y_parity, s = y_parity ^ 1, _SECP256K1_N - s
        return y_parity, r, s

    # --- ledgerblue Dongle interface -------------------------------------------------

    def exchange(self, apdu: bytes | bytearray, timeout: float = 20000) -> bytearray:
        self.apdus.append(bytes(apdu))
        try:
            data, sw = self.process(bytes(apdu))
        except _Ignored:
            time.sleep(min(timeout, 60))  # a real device just stays silent
            self._stream = None
            raise CommException("Timeout") from None
        if sw != SW_OK:
            raise CommException(f"Invalid status {sw:04x}", sw, bytearray(data))
        return bytearray(data)

    def close(self) -> None:
        self._stream = None

    # --- the app ---------------------------------------------------------------------

    def process(self, apdu: bytes) -> tuple[bytes, int]:
        """One APDU in, (answer data, status word) out."""
        if self.locked:
            return b"", SW_LOCKED
        if not self.app_open:
            return b"", SW_APP_NOT_OPEN
        if len(apdu) < 5:
            return b"", SW_BAD_LENGTH
        cla, ins, p1, p2, lc = apdu[:5]
        data = apdu[5:]
        if cla != 0xE0:
            return b"", SW_BAD_CLA
        if lc != len(data):
            return b"", SW_BAD_LENGTH
        handler = {
            0x02: self._get_public_address,
            0x04: self._sign_transaction,
            0x06: self._get_app_configuration,
            0x08: self._sign_personal_message,
            0x0C: self._sign_eip712_hashed,
        }.get(ins)
        if handler is None:
            return b"", SW_BAD_INS
        try:
            return handler(p1, p2, data)
        except _BadData:
            self._stream = None
            return b"", SW_BAD_DATA

    def _approve(self, review: Review) -> bool:
        self.reviews.append(review)
        action = self.user(review) if callable(self.user) else self.user
        if action == "ignore":
            raise _Ignored
        return action == "approve"

    def _get_app_configuration(self, p1: int, p2: int, data: bytes) -> tuple[bytes, int]:
        flags = 0x01 if self.blind_signing else 0x00
        return bytes([flags, *self.app_version]), SW_OK

    def _get_public_address(self, p1: int, p2: int, data: bytes) -> tuple[bytes, int]:
        if p1 not in (0x00, 0x01) or p2 not in (0x00, 0x01):
            return b"", SW_BAD_P1P2
        path, rest = _read_path(data)
        if rest:
            raise _BadData
        key = _keys.PrivateKey(key_from_seed(self._seed, path))
        pubkey = b"\x04" + key.public_key.to_bytes()
        address = to_checksum_address(keccak(pubkey[1:])[-20:])[2:].encode("ascii")
        if p1 == 0x01 and not self._approve(
            Review("address", {"address": "0x" + address.decode()})
        ):
            return b"", SW_REJECTED
        answer = bytes([65]) + pubkey + bytes([40]) + address
        if p2 == 0x01:
            answer += keccak(b"chaincode" + key.to_bytes())  # stands in for the BIP-32 chain code
        return answer, SW_OK

    def _continue_stream(self, ins: int, p1: int, data: bytes) -> _Stream | tuple[bytes, int]:
        if p1 == 0x00:
            path, rest = _read_path(data)
            self._stream = _Stream(ins=ins, path=path)
            if ins == 0x08:
                if len(rest) < 4:
                    raise _BadData
                self._stream.declared_length = struct.unpack(">I", rest[:4])[0]
                rest = rest[4:]
            self._stream.data += rest
        elif p1 == 0x80:
            if self._stream is None or self._stream.ins != ins:
                return b"", SW_REJECTED  # "conditions not satisfied": no signing in progress
            self._stream.data += data
        else:
            return b"", SW_BAD_P1P2
        return self._stream

    def _sign_transaction(self, p1: int, p2: int, data: bytes) -> tuple[bytes, int]:
        if p2 != 0x00:
            return b"", SW_BAD_P1P2
        stream = self._continue_stream(0x04, p1, data)
        if isinstance(stream, tuple):
            return stream
        received = bytes(stream.data)
        state = _transaction_state(received)
        if state == "more":
            return b"", SW_OK
        if state == "unsupported":
            self._stream = None
            return b"", SW_TX_TYPE_UNSUPPORTED
        self._stream = None
        tx_type, fields, chain_id = _decode_transaction(received, chain_less=state == "chainless")
        review = {"type": tx_type, "chain_id": chain_id, **fields}
        if fields["data_length"] and not self.blind_signing:
            raise _BadData
        if not self._approve(Review("transaction", review)):
            return b"", SW_REJECTED
        y_parity, r, s = self._sign(stream.path, keccak(received))
        if tx_type:
            v = y_parity
        elif chain_id is None:
            v = 27 + y_parity
        else:
            v = (chain_id * 2 + 35 + y_parity) & 0xFF  # the app answers with one byte
        return bytes([v]) + r.to_bytes(32, "big") + s.to_bytes(32, "big"), SW_OK

    def _sign_personal_message(self, p1: int, p2: int, data: bytes) -> tuple[bytes, int]:
        if p2 != 0x00:
            return b"", SW_BAD_P1P2
        stream = self._continue_stream(0x08, p1, data)
        if isinstance(stream, tuple):
            return stream
        assert stream.declared_length is not None
        if len(stream.data) < stream.declared_length:
            return b"", SW_OK
        self._stream = None
        if len(stream.data) > stream.declared_length:
            raise _BadData
        message = bytes(stream.data)
        shown = message.decode("ascii") if message.isascii() else "0x" + keccak(message).hex()
        if not self._approve(Review("message", {"message": shown})):
            return b"", SW_REJECTED
        prefix = b"\x19Ethereum Signed Message:\n" + str(len(message)).encode()
        y_parity, r, s = self._sign(stream.path, keccak(prefix + message))
        return bytes([27 + y_parity]) + r.to_bytes(32, "big") + s.to_bytes(32, "big"), SW_OK

    def _sign_eip712_hashed(self, p1: int, p2: int, data: bytes) -> tuple[bytes, int]:
        if p1 != 0x00 or p2 != 0x00:
            return b"", SW_BAD_P1P2  # only the hashed (v0) mode is emulated
        path, rest = _read_path(data)
        if len(rest) != 64:
            raise _BadData
        domain, message = rest[:32], rest[32:]
        review = Review("typed_data", {"domain_hash": domain.hex(), "message_hash": message.hex()})
        if not self._approve(review):
            return b"", SW_REJECTED
        y_parity, r, s = self._sign(path, keccak(b"\x19\x01" + domain + message))
        return bytes([27 + y_parity]) + r.to_bytes(32, "big") + s.to_bytes(32, "big"), SW_OK


class _BadData(Exception):
    pass


def _read_path(data: bytes) -> tuple[str, bytes]:
    if not data or not 1 <= data[0] <= 10 or len(data) < 1 + 4 * data[0]:
        raise _BadData
    depth = data[0]
    parts = []
    for i in range(depth):
        (index,) = struct.unpack(">I", data[1 + 4 * i : 5 + 4 * i])
        hardened = index & 0x80000000
        parts.append(f"{index & 0x7FFFFFFF}'" if hardened else str(index))
    return "m/" + "/".join(parts), data[1 + 4 * depth :]


def _transaction_state(received: bytes) -> str:
    """'more', 'complete', 'chainless' (legacy cut after data) or 'unsupported'."""
    if not received:
        return "more"
    typed = received[0] <= 0x7F
    if typed and received[0] not in (0x01, 0x02):
        return "unsupported"
    start = 1 if typed else 0
    try:
        _, kind, length, body = consume_length_prefix(received, start)
    except (IndexError, DecodingError):
        return "more"  # the list header itself is not all here yet
    if kind is not list:
        raise _BadData
    total = body + length
    if len(received) > total:
        raise _BadData
    if len(received) == total:
        return "complete"
    if not typed and _ends_after_data_field(received, body):
        return "chainless"
    return "more"


def _ends_after_data_field(received: bytes, offset: int) -> bool:
    for _ in range(6):  # nonce, gasPrice, gas, to, value, data
        try:
            _, _, length, start = consume_length_prefix(received, offset)
        except (IndexError, DecodingError):
            return False
        offset = start + length
        if offset > len(received):
            return False
    return offset == len(received)


def _int(value: bytes) -> int:
    return int.from_bytes(value, "big")


def _decode_transaction(
    received: bytes, *, chain_less: bool
) -> tuple[int, dict[str, Any], int | None]:
    try:
        if chain_less:
            _, _, _, offset = consume_length_prefix(received, 0)
            items = []
            for _ in range(6):
                _, _, length, start = consume_length_prefix(received, offset)
                items.append(rlp.decode(received[offset : start + length]))
                offset = start + length
            tx_type, items = 0, items
        elif received[0] <= 0x7F:
            tx_type, items = received[0], rlp.decode(received[1:])
        else:
            tx_type, items = 0, rlp.decode(received)
    except DecodingError as exc:
        raise _BadData from exc
    if tx_type == 0:
        if len(items) not in (6, 9):
            raise _BadData
        nonce, gas_price, gas, to, value, data = items[:6]
        chain_id = _int(items[6]) if len(items) == 9 else None
        if len(items) == 9 and (items[7] or items[8]):
            raise _BadData  # the EIP-155 tail is chainId, 0, 0
        fees = {"gas_price": _int(gas_price)}
    elif tx_type == 0x01:
        if len(items) != 8:
            raise _BadData
        chain, nonce, gas_price, gas, to, value, data, _access = items
        chain_id, fees = _int(chain), {"gas_price": _int(gas_price)}
    else:
        if len(items) != 9:
            raise _BadData
        chain, nonce, tip, max_fee, gas, to, value, data, _access = items
        chain_id = _int(chain)
        fees = {"max_priority_fee_per_gas": _int(tip), "max_fee_per_gas": _int(max_fee)}
    if len(to) not in (0, 20):
        raise _BadData
    fields = {
        "nonce": _int(nonce),
        "gas": _int(gas),
        "to": to_checksum_address(to) if to else None,
        "value": _int(value),
        "data_length": len(data),
        **fees,
    }
    return tx_type, fields, chain_id
