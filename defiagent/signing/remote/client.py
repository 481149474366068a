"""RemoteSigner: the agent's Signer when the key lives in `defiagent signer serve`.

It holds no credential, only the path of the signer's socket. Every signature it gets
back is verified here too (recovered, compared byte for byte with the request), exactly
as for the in-process backends, so a confused signer process cannot make the agent send
something else. A refusal by the signer's policy is raised as SignerRefused (exit 1) with
the signer's rule and reason.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from defiagent.errors import InfraError, Refused
from defiagent.signing.base import (
    SignedTransaction,
    verify_message_signature,
    verify_signed_transaction,
)
from defiagent.signing.remote.protocol import (
    AddressRequest,
    ProtocolError,
    Response,
    SignMessageRequest,
    SignTransactionRequest,
    UnsignedTx,
    parse_response,
    recv_frame,
    send_frame,
)

BACKEND = "remote"


class SignerRefused(Refused):
    """The signer process's policy refused the transaction."""

    def __init__(self, rule: str, reason: str) -> None:
        super().__init__(f"the signer process refused it ({rule}): {reason}")
        self.rule, self.reason = rule, reason


class RemoteSigner:
    """Implements Signer over the signer process's Unix socket (one kept-open connection)."""

    def __init__(
        self, socket_path: Path | str, *, expected_address: str | None = None, timeout: float = 30.0
    ) -> None:
        self.socket_path = Path(socket_path)
        self.timeout = timeout
        self._expected = expected_address
        self._address: str | None = None
        self._conn: socket.socket | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RemoteSigner({self.socket_path})"

    # -- transport -----------------------------------------------------------------------
    def _connect(self) -> socket.socket:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(self.timeout)
        try:
            conn.connect(str(self.socket_path))
        except FileNotFoundError:
            conn.close()
            raise InfraError(
                f"no signer is listening on {self.socket_path}; start `defiagent signer serve`"
            ) from None
        except PermissionError:
            conn.close()
            raise InfraError(
                f"this user may not open the signer socket {self.socket_path} (permission denied)"
            ) from None
        except OSError as exc:
            conn.close()
            raise InfraError(f"the signer at {self.socket_path} cannot be reached: {exc}") from None
        return conn

    def _ask(self, request: BaseModel) -> Response:
        with self._lock:
            for attempt in (1, 2):  # a kept-open connection the signer closed: reconnect once
                if self._conn is None:
                    self._conn = self._connect()
                try:
                    send_frame(self._conn, request)
                    body = recv_frame(self._conn, self.timeout, self.timeout)
                except (OSError, ConnectionError, ProtocolError) as exc:
                    self._drop()
                    if attempt == 2 or isinstance(exc, TimeoutError):
                        raise InfraError(
                            f"the signer at {self.socket_path} did not answer: {exc}"
                        ) from None
                    continue
                if body is None:
                    self._drop()
                    if attempt == 2:
                        raise InfraError(f"the signer at {self.socket_path} closed the connection")
                    continue
                return parse_response(body)
        raise InfraError("unreachable")  # pragma: no cover

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def close(self) -> None:
        with self._lock:
            self._drop()

    @staticmethod
    def _raise(response: Response) -> None:
        if response.refused is not None:
            raise SignerRefused(response.refused.rule, response.refused.reason)
        raise Refused(f"the signer process refused the request: {response.error or 'no reason'}")

    # -- Signer ----------------------------------------------------------------------------
    @property
    def address(self) -> str:
        if self._address is None:
            response = self._ask(AddressRequest(op="address"))
            if not response.ok or not response.address:
                self._raise(response)
            found = str(response.address)
            if self._expected and found.lower() != self._expected.lower():
                raise Refused(
                    f"the signer process signs for {found}, not the pinned address {self._expected}"
                )
            self._address = found
        return self._address

    def sign_transaction(self, tx: dict[str, Any]) -> SignedTransaction:
        unsigned = UnsignedTx.from_tx(tx)
        response = self._ask(SignTransactionRequest(op="sign_transaction", tx=unsigned))
        if not response.ok or not response.raw:
            self._raise(response)
        return verify_signed_transaction(str(response.raw), self.address, tx, backend=BACKEND)

    def sign_message(self, message: bytes) -> bytes:
        response = self._ask(SignMessageRequest(op="sign_message", message="0x" + message.hex()))
        if not response.ok or not response.signature:
            self._raise(response)
        signature = bytes.fromhex(str(response.signature).removeprefix("0x"))
        return verify_message_signature(message, signature, self.address, backend=BACKEND)

    def sign_typed_data(self, typed_data: dict[str, Any]) -> bytes:
        # A typed-data signature can be a token permit (an approval no transaction shows):
        # the signer process never makes one.
        raise Refused("the signer process does not sign typed data (a permit would bypass it)")
