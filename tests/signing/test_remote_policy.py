"""The signer's own pieces, without a chain: the wire's models and caps, the spend ledger,
and the reading of a Safe guard call (what an attacker would malform first)."""

from __future__ import annotations

import json

import pytest
from eth_abi import encode
from eth_utils import to_checksum_address

from defiagent.errors import Refused
from defiagent.guard.calldata import encode_call
from defiagent.safe.batch import execute_data
from defiagent.safe.multisend import encode_multisend
from defiagent.signing.remote.policy import MULTI_SEND, NonceSpendLedger, SafeRoute, safe_calls
from defiagent.signing.remote.protocol import (
    MAX_FRAME,
    ProtocolError,
    Response,
    UnsignedTx,
    parse_request,
)
from defiagent.signing.remote.protocol import (
    encode as encode_frame,
)

SAFE, GUARD, MULTI = "0x" + "aa" * 20, "0x" + "bb" * 20, "0x" + "cc" * 20
TOKEN = "0x" + "dd" * 20
ROUTE = SafeRoute(safe=SAFE, guard=GUARD, multi_send=MULTI)
APPROVE = encode_call("approve(address,uint256)", ["0x" + "ee" * 20, 5])


def guard_tx(data: str, *, to: str = GUARD, value: int = 0) -> UnsignedTx:
    return UnsignedTx(chainId=1, nonce=0, to=to, value=value, data=data, gas=100_000)


def packed(*calls: tuple[int, str, int, bytes]) -> bytes:
    return b"".join(
        bytes([op]) + bytes.fromhex(to[2:]) + v.to_bytes(32, "big") + len(d).to_bytes(32, "big") + d
        for op, to, v, d in calls
    )


def multisend(raw: bytes) -> str:
    return execute_data(MULTI, 0, encode_call(MULTI_SEND, [raw]), 1)


def test_a_guard_call_and_a_batch_are_read_call_by_call():
    single = guard_tx(execute_data(TOKEN, 0, APPROVE, 0))
    assert safe_calls(single, ROUTE) == ([(to_checksum_address(TOKEN), 0, APPROVE)], None)
    data = execute_data(MULTI, 0, encode_multisend([(TOKEN, 0, APPROVE), (TOKEN, 0, APPROVE)]), 1)
    calls, problem = safe_calls(guard_tx(data), ROUTE)
    assert problem is None
    assert len(calls) == 2


@pytest.mark.parametrize(
    ("tx", "why"),
    [
        (guard_tx(APPROVE, to=TOKEN), "only calls its guard"),
        (guard_tx(execute_data(TOKEN, 0, APPROVE, 0), value=1), "takes no ETH"),
        (guard_tx(APPROVE), "not execute"),
        (guard_tx(execute_data(TOKEN, 0, APPROVE, 1)), "only go to its MultiSendCallOnly"),
        (guard_tx(execute_data(MULTI, 0, APPROVE, 1)), "not multiSend"),
        (guard_tx(multisend(packed((1, TOKEN, 0, bytes.fromhex(APPROVE[2:]))))), "operation 0"),
        (guard_tx(multisend(packed((0, TOKEN, 0, bytes.fromhex(APPROVE[2:])))[:-3])), "whole"),
        (guard_tx(multisend(b"\x00" * 40)), "cut short"),
        (guard_tx(multisend(b"")), "empty"),
        (guard_tx(execute_data(TOKEN, 0, APPROVE, 2)), "only go to"),
    ],
)
def test_a_malformed_guard_call_is_refused_with_a_reason(tx, why):
    calls, problem = safe_calls(tx, ROUTE)
    assert calls == []
    assert why in problem


def test_an_execute_with_trailing_bytes_is_not_read():
    data = execute_data(TOKEN, 0, APPROVE, 0) + "00"
    assert "not execute" in safe_calls(guard_tx(data), ROUTE)[1]


def test_the_spend_ledger_counts_a_nonce_once_and_survives_a_restart(tmp_path):
    path = tmp_path / "spend.jsonl"
    ledger = NonceSpendLedger(path, window_seconds=100)
    ledger.add(1_000, nonce=7, value=50)
    ledger.add(1_001, nonce=7, value=80)  # a fee bump: the larger of the two counts
    ledger.add(1_002, nonce=8, value=10)
    assert ledger.spent(1_050) == 90
    assert ledger.already(7) == 80
    again = NonceSpendLedger(path, window_seconds=100)
    assert again.spent(1_050) == 90
    assert again.spent(1_101) == 10  # nonce 7 left the window; nonce 8 is still in it
    assert again.spent(1_102) == 0


def test_a_damaged_spend_ledger_refuses_the_start(tmp_path):
    path = tmp_path / "spend.jsonl"
    path.write_text(json.dumps({"at": 1, "nonce": 1, "value": 5}) + "\nnot a record\n")
    with pytest.raises(Refused, match="line 2"):
        NonceSpendLedger(path, window_seconds=100)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"type": 4}, "type"),
        ({"type": 3}, "type"),
        ({"nonce": 2**64}, "nonce"),
        ({"gas": 0}, "gas"),
        ({"data": "0x" + "00" * (24 * 1024 + 1)}, "data"),
        ({"data": "0xzz"}, "data"),
        ({"to": "0x1234"}, "to"),
        ({"authorizationList": []}, "authorizationList"),  # EIP-7702: hands the account over
    ],
)
def test_the_wire_refuses_what_must_never_be_signed(change, field):
    tx = {"chainId": 1, "nonce": 0, "to": TOKEN, "data": "0x", "gas": 21_000, **change}
    body = json.dumps({"op": "sign_transaction", "tx": tx}).encode()
    with pytest.raises(ProtocolError, match=field):
        parse_request(body)


def test_a_frame_is_capped_on_the_way_out_too():
    with pytest.raises(ProtocolError, match="above the cap"):
        encode_frame(Response(ok=False, error="x" * MAX_FRAME))


def test_an_abi_payload_hidden_in_the_message_op_is_refused():
    body = json.dumps({"op": "sign_message", "message": "0x" + encode(["uint256"], [1]).hex()})
    assert parse_request(body.encode()).op == "sign_message"  # probes only, judged by the server
    with pytest.raises(ProtocolError):
        parse_request(json.dumps({"op": "sign_typed_data", "data": {}}).encode())
