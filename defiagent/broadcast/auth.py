"""The Flashbots relay's request signature: `X-Flashbots-Signature: <address>:<signature>`.

relay.flashbots.net wants every `eth_sendBundle` (and `eth_sendPrivateTransaction`) signed
by a searcher identity key: an EIP-191 personal signature over the hex keccak-256 of the
exact request body. That key builds reputation only and holds no funds; it is never the
trading key. It comes from a secret reference (`[broadcast] auth_key_ref`), read at start.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak

from defiagent.chain.transport import HttpTransport

HEADER = "X-Flashbots-Signature"


def signature_header(body: bytes, key: str) -> str:
    """`<address>:<0x signature>` for `body` as the relay checks it."""
    account = Account.from_key(key)
    digest = "0x" + keccak(body).hex()
    signature = account.sign_message(encode_defunct(text=digest)).signature
    return f"{account.address}:0x{bytes(signature).hex()}"


def signer_of(body: bytes, header: str) -> str | None:
    """The address that signed `body` in a signature header, if the signature holds."""
    address, _, signature = header.partition(":")
    try:
        digest = "0x" + keccak(body).hex()
        recovered = Account.recover_message(encode_defunct(text=digest), signature=signature)
    except Exception:
        return None
    return recovered if recovered.lower() == address.lower() else None


class SigningTransport(HttpTransport):
    """HttpTransport that signs each request body with the identity key."""

    def __init__(self, url: str, key: str, *, timeout: float = 30.0) -> None:
        super().__init__(url, timeout=timeout)
        Account.from_key(key)  # a bad key fails here, at start, not on the first trade
        self._key = key
        self._sign_lock = threading.Lock()  # the header and the body it signs go together

    def post(self, payload: Any) -> Any:
        # HttpTransport sends json.dumps(payload) as is: the same bytes are signed here.
        body = json.dumps(payload).encode()
        with self._sign_lock:
            self._headers = {**self._headers, HEADER: signature_header(body, self._key)}
            return super().post(payload)

    def __repr__(self) -> str:  # never the key
        return "SigningTransport(…)"
