"""Ledger signer: the key stays on the device; the host sends APDUs and checks the answers.

The transport is anything with ledgerblue's Dongle interface (`exchange(apdu, timeout)`
returning the answer's data and raising `CommException` with `.sw` otherwise). Production
opens the USB HID device with `ledgereth.comms.init_dongle` (or ledgerblue's TCP transport
when `LEDGER_PROXY_ADDRESS`/`LEDGER_PROXY_PORT` are set, as for Speculos); tests run the
real Ethereum app in Speculos (`defiagent.signing.testing.speculos`) and inject
`defiagent.signing.testing.ledger_emulator.EmulatedLedger` for faults the app cannot make.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import sys
from typing import Any, Protocol

from eth_utils import to_checksum_address
from hexbytes import HexBytes
from ledgerblue.commException import CommException

from defiagent.errors import ConfigError, DefiagentError, InfraError, ToolMissing
from defiagent.signing import ledger_apdu as apdu
from defiagent.signing.base import (
    SignatureMismatch,
    SignedTransaction,
    report_mismatch,
    verify_message_signature,
    verify_signed_transaction,
    verify_typed_data_signature,
)
from defiagent.signing.der import address_from_point
from defiagent.signing.transactions import (
    UnsignedTransaction,
    prepare_transaction,
    signature_bytes,
    typed_data_hashes,
)

log = logging.getLogger("defiagent.signing")

# EIP-1559 came to the Ethereum app in 1.9.x; older apps cannot sign what the agent sends.
MIN_APP_VERSION = (1, 9, 0)
FLAG_BLIND_SIGNING = 0x01


def _has_calldata(tx: dict[str, Any]) -> bool:
    data = tx.get("data", tx.get("input"))
    if not data:
        return False
    return len(HexBytes(data)) > 0


class Dongle(Protocol):
    # ledgerblue's transports take a bytearray, a timeout in seconds, and answer a bytearray.
    def exchange(self, apdu: bytes | bytearray, timeout: float = ...) -> bytes | bytearray: ...

    def close(self) -> None: ...


def _forget_cached_dongle(dongle: Dongle) -> None:
    """ledgereth keeps the dongle it opened in a module cache: drop a closed one from it,
    or the next signer in this process would be handed a dead transport."""
    comms: Any = sys.modules.get("ledgereth.comms")  # its module globals, set by name
    if comms is not None and getattr(comms, "DONGLE_CACHE", None) is dongle:
        comms.DONGLE_CACHE = None
        comms.DONGLE_CONFIG_CACHE = None


def open_hid_dongle() -> Dongle:
    """The first Ledger on USB, opened by ledgereth (ledgerblue's HID transport underneath).

    Only the opening goes through ledgereth; commands are framed here so that every status
    word reaches `ledger_apdu.error_for_status` intact.
    """
    try:
        from ledgereth.comms import init_dongle
        from ledgereth.exceptions import LedgerError
    except ImportError as exc:  # ledgereth or hidapi missing from the host
        raise ToolMissing(f"the Ledger USB transport cannot load: {exc}") from exc
    try:
        dongle: Dongle = init_dongle()  # ledgerblue's, untyped
        return dongle
    except (LedgerError, CommException, OSError) as exc:
        raise apdu.LedgerNotFound(
            f"no Ledger answered on USB ({exc})",
            remedy="plug it in, unlock it and open the Ethereum app",
        ) from exc
    except NotImplementedError as exc:  # ledgereth's firmware gate
        raise ConfigError(f"the Ledger's Ethereum app is not supported: {exc}") from exc


class LedgerSigner:
    """Signs with the key at `derivation_path` on a Ledger running the Ethereum app."""

    backend = "ledger"

    def __init__(
        self,
        derivation_path: str = apdu.DEFAULT_PATH,
        *,
        dongle: Dongle | None = None,
        timeout: float = 60.0,
        expected_address: str | None = None,
    ) -> None:
        self.derivation_path = derivation_path
        self._encoded_path = apdu.encode_path(derivation_path)
        self._dongle = dongle
        self.timeout = timeout
        self._expected = to_checksum_address(expected_address) if expected_address else None
        self._address: str | None = None
        self._app_flags: int | None = None

    def __repr__(self) -> str:
        return f"LedgerSigner(path={self.derivation_path!r})"

    # --- transport -----------------------------------------------------------------

    def _device(self) -> Dongle:
        if self._dongle is None:
            self._dongle = open_hid_dongle()
        # ledgerblue's TCP transport (Speculos) ignores `timeout` and would wait forever
        # for the buttons: bound its socket instead.
        sock = getattr(self._dongle, "socket", None)
        if isinstance(sock, socket.socket):
            sock.settimeout(self.timeout)
        return self._dongle

    def _drop_transport(self) -> None:
        """A connection that failed mid-command may still deliver that command's late
        answer, which would then be read as the next command's: never reuse it."""
        dongle, self._dongle = self._dongle, None
        if dongle is not None:
            with contextlib.suppress(Exception):  # discarded because it is broken
                dongle.close()
            _forget_cached_dongle(dongle)

    def _exchange(self, command: bytes, action: str) -> bytes:
        try:
            # ledgerblue's HID transport takes its timeout in seconds.
            return bytes(self._device().exchange(bytearray(command), timeout=self.timeout))
        except CommException as exc:
            if str(getattr(exc, "message", "")).startswith("Timeout"):
                raise apdu.LedgerTimeout(
                    f"the Ledger did not answer {action} within {self.timeout:g} s",
                    remedy="confirm on the device sooner, or check the connection",
                ) from exc
            raise apdu.error_for_status(exc.sw, action) from exc
        except TimeoutError as exc:  # the TCP transport's socket timeout
            self._drop_transport()
            raise apdu.LedgerTimeout(
                f"the Ledger did not answer {action} within {self.timeout:g} s",
                remedy="confirm on the device sooner, or check the connection",
            ) from exc
        except (struct.error, ConnectionError) as exc:
            # The other end closed the connection without an answer (ledgerblue's TCP
            # transport then reads an empty frame): the app quit or the device went away.
            self._drop_transport()
            raise InfraError(
                f"the Ledger closed the connection during {action} without answering "
                "(no signature came back)",
                remedy="unlock the device, open the Ethereum app and retry",
            ) from exc
        except (OSError, AttributeError) as exc:
            # Unplugged mid-call, or a transport whose connection is gone (ledgerblue's TCP
            # transport has no socket once closed): no answer, so nothing was signed.
            self._drop_transport()
            raise InfraError(f"the Ledger connection failed during {action}: {exc}") from exc

    def _send_chunked(self, ins: int, payload: bytes, action: str, **split: Any) -> bytes:
        chunks = apdu.split_chunks(payload, **split)
        answer = b""
        for i, chunk in enumerate(chunks):
            p1 = apdu.P1_FIRST_CHUNK if i == 0 else apdu.P1_MORE_CHUNK
            answer = self._exchange(apdu.command(ins, p1, 0x00, chunk), action)
            if i < len(chunks) - 1 and answer:
                # The app answered before it had everything: it signed a truncated payload.
                raise report_mismatch(
                    SignatureMismatch(f"the Ledger answered {action} before the last chunk"),
                    backend=self.backend,
                    kind=action,
                )
        return answer

    def close(self) -> None:
        if self._dongle is not None:
            self._dongle.close()
            _forget_cached_dongle(self._dongle)
            self._dongle = None

    # --- app and address -----------------------------------------------------------

    def app_configuration(self) -> tuple[int, tuple[int, int, int]]:
        """(flags, version) of the Ethereum app; refuses an app too old for EIP-1559."""
        answer = self._exchange(
            apdu.command(apdu.INS_GET_APP_CONFIGURATION, 0x00, 0x00), "the app version request"
        )
        flags, version = apdu.parse_app_configuration(answer)
        if version < MIN_APP_VERSION:
            shown = ".".join(map(str, version))
            raise ConfigError(
                f"the Ledger's Ethereum app {shown} is too old to sign EIP-1559 transactions",
                remedy="update it with Ledger Live",
            )
        self._app_flags = flags
        return flags, version

    def _get_address(self, confirm: bool) -> str:
        p1 = apdu.P1_CONFIRM if confirm else apdu.P1_NO_CONFIRM
        action = "the address confirmation" if confirm else "the address request"
        answer = self._exchange(
            apdu.command(apdu.INS_GET_PUBLIC_ADDRESS, p1, apdu.P2_NO_CHAINCODE, self._encoded_path),
            action,
        )
        pubkey, shown = apdu.parse_public_address(answer)
        derived = address_from_point(pubkey)
        # The address text and the public key must agree; otherwise the answer is corrupt.
        if shown.lower() != derived.lower():
            raise report_mismatch(
                SignatureMismatch(f"the Ledger showed address {shown} but its key is {derived}"),
                backend=self.backend,
                kind="address",
            )
        if self._expected and derived != self._expected:
            raise report_mismatch(
                SignatureMismatch(
                    f"the Ledger's key at {self.derivation_path} is {derived}, "
                    f"not the configured {self._expected}"
                ),
                backend=self.backend,
                kind="address",
            )
        return derived

    @property
    def address(self) -> str:
        if self._address is None:
            if self._app_flags is None:
                self.app_configuration()
            self._address = self._get_address(confirm=False)
        return self._address

    def confirm_address(self) -> str:
        """Show the address on the device and wait for the person to approve it."""
        if self._app_flags is None:
            self.app_configuration()
        self._address = self._get_address(confirm=True)
        return self._address

    # --- signing -------------------------------------------------------------------

    def _tx_y_parity(self, unsigned: UnsignedTransaction, v_byte: int) -> int:
        # Typed transactions: the app returns the y-parity itself. Legacy: the low byte of
        # chainId*2 + 35 + parity.
        y_parity = v_byte if unsigned.tx_type else (v_byte - unsigned.legacy_v(0)) % 256
        if y_parity not in (0, 1):
            raise report_mismatch(
                SignatureMismatch(
                    f"the Ledger's signature (v byte {v_byte}) is not for chain {unsigned.chain_id}"
                ),
                backend=self.backend,
                kind="transaction",
                signer=self.address,
            )
        return y_parity

    def sign_transaction(self, tx: dict[str, Any]) -> SignedTransaction:
        unsigned = prepare_transaction(tx)
        sender = self.address  # also checks app version and the pinned address
        avoid = None
        if unsigned.tx_type == 0:
            avoid = len(self._encoded_path) + apdu.legacy_eip155_offset(unsigned.preimage)
        try:
            answer = self._send_chunked(
                apdu.INS_SIGN_TRANSACTION,
                self._encoded_path + unsigned.preimage,
                "the transaction",
                avoid_boundary=avoid,
            )
        except apdu.LedgerDataRefused as exc:
            if _has_calldata(unsigned.tx):
                raise self._calldata_refusal() from exc
            raise
        v_byte, r, s = apdu.parse_vrs(answer)
        y_parity = self._tx_y_parity(unsigned, v_byte)
        raw = unsigned.assemble(y_parity, r, s)
        return verify_signed_transaction(raw, sender, tx, backend=self.backend)

    def _calldata_refusal(self) -> apdu.LedgerDataRefused:
        """Why the app refused a contract call: its blind-signing setting, read back from
        the device (the flag in GET_APP_CONFIGURATION), or the data itself."""
        try:
            flags, _ = self.app_configuration()
        except DefiagentError:
            flags = None
        if flags is not None and flags & FLAG_BLIND_SIGNING:
            return apdu.LedgerDataRefused(
                "the Ledger's Ethereum app refused the contract call's data although blind "
                "signing is enabled on the device (its own parser for this call refused it)"
            )
        return apdu.LedgerDataRefused(
            "the Ledger's Ethereum app refused the contract call: blind signing (contract "
            "data) is not enabled on the device",
            remedy="enable blind signing / contract data in the Ethereum app's settings "
            "on the device, then retry",
        )

    def _signature_from(self, answer: bytes, what: str) -> bytes:
        v_byte, r, s = apdu.parse_vrs(answer)
        if v_byte not in (27, 28):
            raise report_mismatch(
                SignatureMismatch(f"the Ledger's {what} signature has v = {v_byte}"),
                backend=self.backend,
                kind=what,
                signer=self.address,
            )
        return signature_bytes(v_byte - 27, r, s)

    def sign_message(self, message: bytes) -> bytes:
        sender = self.address
        payload = self._encoded_path + len(message).to_bytes(4, "big") + message
        answer = self._send_chunked(apdu.INS_SIGN_PERSONAL_MESSAGE, payload, "the message")
        signature = self._signature_from(answer, "message")
        return verify_message_signature(message, signature, sender, backend=self.backend)

    def sign_typed_data(self, typed_data: dict[str, Any]) -> bytes:
        sender = self.address
        hashes = typed_data_hashes(typed_data)
        # Hashed mode (v0): the device shows the two hashes; every app version has it.
        payload = self._encoded_path + hashes.domain_separator + hashes.message_hash
        answer = self._exchange(
            apdu.command(apdu.INS_SIGN_EIP712_HASHED, 0x00, apdu.P2_EIP712_HASHED, payload),
            "the typed data",
        )
        signature = self._signature_from(answer, "typed_data")
        return verify_typed_data_signature(typed_data, signature, sender, backend=self.backend)
