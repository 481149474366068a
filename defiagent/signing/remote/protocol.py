"""The signer socket's wire format: one request frame in, one response frame out.

A frame is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON. Frames
above MAX_FRAME are refused before they are read, and every read has a deadline, so a
client that stalls or floods cannot hold the signer. Requests and responses are strict
pydantic models (unknown fields refused, integers bounded), checked on both sides.
"""

from __future__ import annotations

import json
import socket
import struct
import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from defiagent.errors import InfraError, Refused

MAX_FRAME = 64 * 1024  # a swap's calldata is under 1 KiB; nothing legitimate comes close
MAX_CALLDATA_BYTES = 24 * 1024
_HEADER = struct.Struct(">I")
UINT64 = 2**64 - 1
UINT256 = 2**256 - 1


class ProtocolError(Refused):
    """A frame or a message that does not follow the protocol (the connection is closed)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class AccessListItem(_Strict):
    address: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    storageKeys: list[Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{64}$")]] = Field(
        default_factory=list, max_length=64
    )


class UnsignedTx(_Strict):
    """An unsigned transaction, as the agent's executor builds it (EIP-1559 or legacy)."""

    type: Literal[0, 1, 2] = 2
    chainId: int = Field(gt=0, le=UINT64)
    nonce: int = Field(ge=0, le=UINT64)
    to: str | None = Field(default=None, pattern=r"^0x[0-9a-fA-F]{40}$")
    value: int = Field(default=0, ge=0, le=UINT256)
    data: str = Field(default="0x", max_length=2 + 2 * MAX_CALLDATA_BYTES)
    gas: int = Field(gt=0, le=UINT64)
    maxFeePerGas: int | None = Field(default=None, ge=0, le=UINT256)
    maxPriorityFeePerGas: int | None = Field(default=None, ge=0, le=UINT256)
    gasPrice: int | None = Field(default=None, ge=0, le=UINT256)
    accessList: list[AccessListItem] = Field(default_factory=list, max_length=32)

    @field_validator("data")
    @classmethod
    def _hex(cls, value: str) -> str:
        if not value.startswith("0x") or len(value) % 2:
            raise ValueError("data must be 0x-prefixed hex of whole bytes")
        try:
            bytes.fromhex(value[2:])
        except ValueError:
            raise ValueError("data is not hex") from None
        return value.lower()

    def as_tx(self) -> dict[str, Any]:
        """The dict every backend signs (the shape the executor builds)."""
        tx: dict[str, Any] = {
            "chainId": self.chainId,
            "nonce": self.nonce,
            "value": self.value,
            "data": self.data,
            "gas": self.gas,
        }
        if self.to is not None:
            tx["to"] = self.to
        if self.type == 2:
            tx.update(
                type=2,
                maxFeePerGas=self.maxFeePerGas,
                maxPriorityFeePerGas=self.maxPriorityFeePerGas,
                accessList=[a.model_dump() for a in self.accessList],
            )
        else:
            tx["gasPrice"] = self.gasPrice
            if self.type == 1:
                tx.update(type=1, accessList=[a.model_dump() for a in self.accessList])
        return tx

    @classmethod
    def from_tx(cls, tx: dict[str, Any]) -> UnsignedTx:
        """From the executor's dict; refuses fields the protocol does not carry."""
        fields = {k: v for k, v in tx.items() if k != "from"}
        if isinstance(fields.get("type"), str):
            fields["type"] = int(fields["type"], 16)
        if "type" not in fields:
            fields["type"] = 2 if "maxFeePerGas" in fields else 0
        if isinstance(fields.get("data"), bytes):
            fields["data"] = "0x" + fields["data"].hex()
        try:
            return cls.model_validate(fields)
        except ValidationError as exc:
            raise Refused(f"the transaction cannot be sent to the signer: {_first(exc)}") from None


class AddressRequest(_Strict):
    op: Literal["address"]


class SignTransactionRequest(_Strict):
    op: Literal["sign_transaction"]
    tx: UnsignedTx


class SignMessageRequest(_Strict):
    op: Literal["sign_message"]
    message: str = Field(max_length=2 + 2 * 1024, pattern=r"^0x([0-9a-f]{2})*$")


Request = Annotated[
    AddressRequest | SignTransactionRequest | SignMessageRequest, Field(discriminator="op")
]


class RefusalInfo(_Strict):
    rule: str
    reason: str


class Response(_Strict):
    ok: bool
    address: str | None = None
    raw: str | None = None  # signed transaction
    hash: str | None = None
    signature: str | None = None  # message signature
    refused: RefusalInfo | None = None
    error: str | None = None  # not a policy refusal: bad request, backend down


def _first(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}" if where else err["msg"]


_REQUEST: TypeAdapter[AddressRequest | SignTransactionRequest | SignMessageRequest] = TypeAdapter(
    Request
)


def parse_request(body: bytes) -> AddressRequest | SignTransactionRequest | SignMessageRequest:
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ProtocolError("the request is not UTF-8 JSON") from None
    try:
        # JSON has no big-int type problem here: Python's json keeps ints exact.
        return _REQUEST.validate_python(data, strict=False)
    except ValidationError as exc:
        raise ProtocolError(f"the request is not valid: {_first(exc)}") from None


def parse_response(body: bytes) -> Response:
    try:
        return Response.model_validate_json(body, strict=False)
    except ValidationError as exc:
        raise InfraError(f"the signer sent an answer that is not valid: {_first(exc)}") from None


def encode(message: BaseModel) -> bytes:
    body = message.model_dump_json(exclude_none=True).encode()
    if len(body) > MAX_FRAME:
        raise ProtocolError(f"a frame of {len(body)} bytes is above the cap of {MAX_FRAME}")
    return _HEADER.pack(len(body)) + body


def send_frame(sock: socket.socket, message: BaseModel) -> None:
    sock.sendall(encode(message))


def _recv_exact(sock: socket.socket, size: int, deadline: float) -> bytes:
    chunks, got = [], 0
    while got < size:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the frame did not arrive before its deadline")
        sock.settimeout(left)
        chunk = sock.recv(min(65536, size - got))
        if not chunk:
            raise ConnectionError("the peer closed the connection mid-frame")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def recv_frame(sock: socket.socket, idle_timeout: float, frame_timeout: float) -> bytes | None:
    """One frame's body; None when the peer closed cleanly between frames.

    The first byte may take up to `idle_timeout` (a connection kept open between
    requests); from then on the whole frame must arrive within `frame_timeout`.
    """
    sock.settimeout(idle_timeout)
    first = sock.recv(_HEADER.size)
    if not first:
        return None
    deadline = time.monotonic() + frame_timeout
    if len(first) < _HEADER.size:
        first += _recv_exact(sock, _HEADER.size - len(first), deadline)
    (size,) = _HEADER.unpack(first)
    if size == 0 or size > MAX_FRAME:
        raise ProtocolError(f"a frame of {size} bytes is outside 1..{MAX_FRAME}")
    return _recv_exact(sock, size, deadline)
