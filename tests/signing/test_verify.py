"""The payload codec and the checks every signature passes, whatever backend made it."""

from __future__ import annotations

import logging

import pytest
import rlp
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from eth_keys import keys

from defiagent.errors import Refused
from defiagent.signing import base
from defiagent.signing.base import (
    SignatureMismatch,
    verify_message_signature,
    verify_signed_transaction,
    verify_typed_data_signature,
)
from defiagent.signing.secp256k1 import SECP256K1_N
from defiagent.signing.transactions import (
    personal_message_digest,
    prepare_transaction,
    signature_bytes,
    typed_data_hashes,
)
from tests.signing.helpers import TYPED_DATA

TO = "0x000000000000000000000000000000000000bEEF"
TXS = {
    "legacy": {"chainId": 1, "nonce": 7, "to": TO, "value": 5, "gas": 21000, "gasPrice": 10**9},
    "access_list": {
        "type": 1,
        "chainId": 10,
        "nonce": 0,
        "to": TO,
        "value": 0,
        "gas": 50000,
        "gasPrice": 10**9,
        "data": "0xa9059cbb",
        "accessList": [{"address": TO, "storageKeys": ["0x" + "00" * 32]}],
    },
    "eip1559": {
        "type": 2,
        "chainId": 31337,
        "nonce": 3,
        "to": TO,
        "value": 10**18,
        "gas": 60000,
        "maxFeePerGas": 3 * 10**9,
        "maxPriorityFeePerGas": 10**9,
        "data": b"\x01\x02",
    },
}


@pytest.mark.parametrize("name", TXS)
def test_own_encoding_equals_eth_account_byte_for_byte(name):
    # Our preimage + assemble path (used by KMS and Ledger) must produce exactly the raw
    # transaction eth-account's reference signer produces (RFC 6979 makes both deterministic).
    account = Account.create()
    tx = TXS[name]
    unsigned = prepare_transaction(tx)
    y_parity, r, s = keys.PrivateKey(account.key).sign_msg_hash(unsigned.digest).vrs
    ours = unsigned.assemble(y_parity, r, s)
    assert ours == bytes(account.sign_transaction(tx).raw_transaction)
    assert verify_signed_transaction(ours, account.address, tx).sender == account.address


def test_message_and_typed_data_digests_match_eth_account():
    account = Account.create()
    y, r, s = keys.PrivateKey(account.key).sign_msg_hash(personal_message_digest(b"hi")).vrs
    reference = account.sign_message(encode_defunct(primitive=b"hi")).signature
    assert signature_bytes(y, r, s) == bytes(reference)
    digest = typed_data_hashes(TYPED_DATA).digest
    y, r, s = keys.PrivateKey(account.key).sign_msg_hash(digest).vrs
    reference = account.sign_message(encode_typed_data(full_message=TYPED_DATA)).signature
    assert signature_bytes(y, r, s) == bytes(reference)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"chainId": None}, "lacks chainId"),
        ({"nonce": None}, "lacks nonce"),
        ({"type": 4}, "type 4"),
        ({"type": 3}, "type 3"),
        ({"chainId": 0}, "chain id 0"),
    ],
)
def test_refuses_to_prepare_what_must_not_be_signed(change, reason):
    tx = {**TXS["eip1559"], **change}
    tx = {k: v for k, v in tx.items() if v is not None}
    with pytest.raises(Refused, match=reason):
        prepare_transaction(tx)


def test_recipient_case_is_normalised_but_a_bad_checksum_is_refused():
    tx = {**TXS["eip1559"], "to": TO.lower()}
    assert prepare_transaction(tx).preimage == prepare_transaction(TXS["eip1559"]).preimage
    account, raw = _signed(TXS["eip1559"])
    assert verify_signed_transaction(raw, account.address, tx).sender == account.address
    bad = "0x" + TO[2:].swapcase()
    with pytest.raises(Refused, match="bad checksum"):
        prepare_transaction({**TXS["eip1559"], "to": bad})


def _signed(tx, key=None):
    account = Account.from_key(key) if key else Account.create()
    return account, bytes(account.sign_transaction(tx).raw_transaction)


def test_wrong_key_is_refused_logged_and_alerted(alerts, caplog):
    signer, _ = _signed(TXS["eip1559"])
    _, raw_by_other = _signed(TXS["eip1559"])
    with (
        caplog.at_level(logging.WARNING, logger="defiagent.signing"),
        pytest.raises(SignatureMismatch, match="recovers to"),
    ):
        verify_signed_transaction(raw_by_other, signer.address, TXS["eip1559"], backend="t")
    assert alerts
    assert alerts[0][1] == {"backend": "t", "kind": "transaction", "signer": signer.address}
    assert any("refused a signature" in r.message for r in caplog.records)


def test_default_alert_logs_at_error(caplog):
    signer, _ = _signed(TXS["legacy"])
    _, raw_by_other = _signed(TXS["legacy"])
    with (
        caplog.at_level(logging.WARNING, logger="defiagent.signing"),
        pytest.raises(SignatureMismatch),
    ):
        verify_signed_transaction(raw_by_other, signer.address, TXS["legacy"])
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors
    assert "ALERT" in errors[0].getMessage()


def test_a_failing_alert_hook_does_not_turn_a_refusal_into_success(caplog):
    def broken(err, ctx):
        raise RuntimeError("pager down")

    previous = base.set_alert_hook(broken)
    try:
        _, raw_by_other = _signed(TXS["legacy"])
        with pytest.raises(SignatureMismatch):
            verify_signed_transaction(raw_by_other, Account.create().address, TXS["legacy"])
    finally:
        base.set_alert_hook(previous)


def test_wrong_chain_id_is_refused(alerts):
    account, raw_chain_5 = _signed({**TXS["legacy"], "chainId": 5})
    with pytest.raises(SignatureMismatch, match="for chain 5, not chain 1"):
        verify_signed_transaction(raw_chain_5, account.address, TXS["legacy"])
    account, raw = _signed({**TXS["eip1559"], "chainId": 1})
    with pytest.raises(SignatureMismatch, match="not the transaction that was requested"):
        verify_signed_transaction(raw, account.address, TXS["eip1559"])
    assert len(alerts) == 2


def test_chainless_legacy_signature_is_refused():
    account = Account.create()
    tx = {k: v for k, v in TXS["legacy"].items() if k != "chainId"}
    raw = bytes(account.sign_transaction(tx).raw_transaction)  # pre-EIP-155: v = 27/28
    with pytest.raises(SignatureMismatch, match="no chain id"):
        verify_signed_transaction(raw, account.address, TXS["legacy"])


def test_other_content_signed_by_the_right_key_is_refused():
    account, raw = _signed({**TXS["eip1559"], "to": "0x000000000000000000000000000000000000dEaD"})
    with pytest.raises(SignatureMismatch, match="not the transaction that was requested"):
        verify_signed_transaction(raw, account.address, TXS["eip1559"])
    account, raw = _signed({**TXS["eip1559"], "nonce": 4})
    with pytest.raises(SignatureMismatch):
        verify_signed_transaction(raw, account.address, TXS["eip1559"])


def _high_s_raw(raw: bytes) -> bytes:
    fields = rlp.decode(raw)
    v = int.from_bytes(fields[6], "big")
    s = int.from_bytes(fields[8], "big")
    flipped = v + 1 if (v - 35) % 2 == 0 else v - 1  # the mirrored signature's parity
    fields[6] = rlp.sedes.big_endian_int.serialize(flipped)
    fields[8] = rlp.sedes.big_endian_int.serialize(SECP256K1_N - s)
    return rlp.encode(fields)


def test_high_s_is_refused_even_though_it_recovers():
    account, raw = _signed(TXS["legacy"])
    mirrored = _high_s_raw(raw)
    assert Account.recover_transaction(mirrored) == account.address  # valid ECDSA, wrong form
    with pytest.raises(SignatureMismatch, match="high s"):
        verify_signed_transaction(mirrored, account.address, TXS["legacy"])


def test_message_checks():
    account = Account.create()
    signature = bytes(account.sign_message(encode_defunct(primitive=b"gm")).signature)
    assert verify_message_signature(b"gm", signature, account.address) == signature
    with pytest.raises(SignatureMismatch, match="recovers to"):
        verify_message_signature(b"gn", signature, account.address)
    r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    mirrored = r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])  # 27 <-> 28
    with pytest.raises(SignatureMismatch, match="high s"):
        verify_message_signature(b"gm", mirrored, account.address)
    with pytest.raises(SignatureMismatch, match="65 bytes"):
        verify_message_signature(b"gm", signature[:64], account.address)


def test_typed_data_checks():
    account = Account.create()
    signable = encode_typed_data(full_message=TYPED_DATA)
    signature = bytes(account.sign_message(signable).signature)
    assert verify_typed_data_signature(TYPED_DATA, signature, account.address) == signature
    other = {**TYPED_DATA, "message": {**TYPED_DATA["message"], "amount": 1}}
    with pytest.raises(SignatureMismatch, match="recovers to"):
        verify_typed_data_signature(other, signature, account.address)
