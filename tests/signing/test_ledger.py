"""Ledger signer against the emulated Ethereum app (real APDUs, real secp256k1 key)."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from eth_utils import keccak

from defiagent.errors import ConfigError, InfraError, Refused
from defiagent.signing import ledger_apdu as apdu
from defiagent.signing.base import SignatureMismatch, Signer
from defiagent.signing.ledger import LedgerSigner, open_hid_dongle
from defiagent.signing.testing.ledger_emulator import EmulatedLedger
from defiagent.signing.transactions import prepare_transaction
from tests.signing.helpers import TYPED_DATA, run_on_anvil

TO = "0x000000000000000000000000000000000000bEEF"


def _tx1559(**extra):
    return {
        "type": 2,
        "chainId": 31337,
        "nonce": 0,
        "to": TO,
        "value": 1,
        "gas": 21000,
        "maxFeePerGas": 2 * 10**9,
        "maxPriorityFeePerGas": 10**9,
        **extra,
    }


def _legacy(**extra):
    return {
        "chainId": 1,
        "nonce": 0,
        "to": TO,
        "value": 1,
        "gas": 90000,
        "gasPrice": 10**9,
        **extra,
    }


def test_is_a_signer_and_derives_the_configured_path(device):
    default = LedgerSigner(dongle=device)
    assert isinstance(default, Signer)
    assert default.address == device.address_at("m/44'/60'/0'/0/0")
    second = LedgerSigner("m/44'/60'/1'/0/0", dongle=device)
    assert second.address == device.address_at("m/44'/60'/1'/0/0")
    assert second.address != default.address
    # Only silent address requests: no review was shown.
    assert device.reviews == []


def test_address_confirmation_on_device(device, ledger):
    assert ledger.confirm_address() == device.address_at()
    assert device.reviews[-1].kind == "address"
    assert device.reviews[-1].fields["address"].lower() == device.address_at().lower()
    device.user = "reject"
    with pytest.raises(apdu.LedgerRejected, match="rejected on the Ledger") as info:
        ledger.confirm_address()
    assert info.value.exit_code == 1


def test_pinned_address_must_match(device, alerts):
    signer = LedgerSigner(dongle=device, expected_address=Account.create().address)
    with pytest.raises(SignatureMismatch, match="not the configured"):
        _ = signer.address
    assert alerts


def test_signs_on_anvil_eip1559_and_legacy(w3, device, ledger):
    run_on_anvil(w3, ledger)
    shown = [r.fields for r in device.reviews if r.kind == "transaction"]
    assert [f["type"] for f in shown] == [2, 0]
    assert {f["chain_id"] for f in shown} == {31337}  # what the person saw on the screen


def test_device_received_exactly_the_preimage_in_framed_chunks(device, ledger):
    tx = _tx1559(data=bytes(range(256)) * 3)  # 768 bytes of calldata: 4 chunks
    ledger.sign_transaction(tx)
    sign_apdus = [a for a in device.apdus if a[1] == apdu.INS_SIGN_TRANSACTION]
    assert len(sign_apdus) == 4
    assert [a[2] for a in sign_apdus] == [0x00, 0x80, 0x80, 0x80]
    assert all(a[0] == 0xE0 and a[4] == len(a) - 5 <= 255 for a in sign_apdus)
    stream = b"".join(a[5:] for a in sign_apdus)
    path = apdu.encode_path(apdu.DEFAULT_PATH)
    assert stream == path + prepare_transaction(tx).preimage
    assert device.reviews[-1].fields["data_length"] == 768


def _legacy_with_boundary_at_255() -> dict:
    """A legacy tx whose data field ends exactly where a naive 255-byte chunk would end."""
    path_len = len(apdu.encode_path(apdu.DEFAULT_PATH))
    for size in range(150, 260):
        tx = _legacy(data=b"\x11" * size)
        offset = apdu.legacy_eip155_offset(prepare_transaction(tx).preimage)
        if path_len + offset == 255:
            return tx
    raise AssertionError("no data size puts the EIP-155 tail at the chunk boundary")


def test_naive_chunking_at_the_eip155_marker_gets_a_chainless_signature(device):
    # The emulated app, like the real one, treats a legacy tx cut right after its data field
    # as pre-EIP-155 and signs what it has. This is the trap the host must avoid.
    tx = _legacy_with_boundary_at_255()
    payload = apdu.encode_path(apdu.DEFAULT_PATH) + prepare_transaction(tx).preimage
    first = apdu.command(apdu.INS_SIGN_TRANSACTION, 0x00, 0x00, payload[:255])
    answer = device.exchange(first, timeout=1)
    assert len(answer) == 65
    assert answer[0] in (27, 28)  # no chain id in v
    assert device.reviews[-1].fields["chain_id"] is None


def test_signer_avoids_the_eip155_marker_boundary(device, ledger):
    tx = _legacy_with_boundary_at_255()
    signed = ledger.sign_transaction(tx)
    assert signed.chain_id == 1
    sign_apdus = [a for a in device.apdus if a[1] == apdu.INS_SIGN_TRANSACTION]
    assert len(sign_apdus[0]) - 5 == 254


def test_legacy_v_byte_is_reconstructed_for_large_chain_ids(ledger):
    # chainId*2+35 does not fit the app's one-byte v; the host must rebuild it.
    for chain_id in (1, 137, 31337, 11155111):
        signed = ledger.sign_transaction(_legacy(chainId=chain_id))
        assert signed.chain_id == chain_id


def test_messages_long_and_short(device, ledger):
    for message in (b"hello", b"x" * 1000):
        signature = ledger.sign_message(message)
        signable = encode_defunct(primitive=message)
        assert Account.recover_message(signable, signature=signature) == ledger.address
    msg_apdus = [a for a in device.apdus if a[1] == apdu.INS_SIGN_PERSONAL_MESSAGE]
    assert [a[2] for a in msg_apdus] == [0x00, 0x00, 0x80, 0x80, 0x80, 0x80]
    assert device.reviews[-2].fields["message"] == "hello"


def test_eip712_hashed_mode(device, ledger):
    signature = ledger.sign_typed_data(TYPED_DATA)
    signable = encode_typed_data(full_message=TYPED_DATA)
    assert Account.recover_message(signable, signature=signature) == ledger.address
    assert device.reviews[-1].fields["domain_hash"] == bytes(signable.header).hex()
    assert device.reviews[-1].fields["message_hash"] == bytes(signable.body).hex()


def test_user_rejection_is_a_refusal(device, ledger):
    _ = ledger.address
    device.user = "reject"
    for call in (
        lambda: ledger.sign_transaction(_tx1559()),
        lambda: ledger.sign_message(b"no"),
        lambda: ledger.sign_typed_data(TYPED_DATA),
    ):
        with pytest.raises(apdu.LedgerRejected) as info:
            call()
        assert info.value.exit_code == 1


def test_device_states_give_clear_errors(device, ledger):
    device.locked = True
    with pytest.raises(apdu.LedgerLocked, match="locked") as info:
        _ = ledger.address
    assert info.value.exit_code == 3
    assert "PIN" in str(info.value)
    device.locked = False
    device.app_open = False
    with pytest.raises(apdu.LedgerAppNotOpen, match="Ethereum app is not open"):
        _ = ledger.address
    device.app_open = True
    assert ledger.address == device.address_at()


def test_timeout_when_nobody_confirms(device):
    signer = LedgerSigner(dongle=device, timeout=0.2)
    _ = signer.address
    device.user = "ignore"
    with pytest.raises(apdu.LedgerTimeout, match=r"within 0.2 s") as info:
        signer.sign_transaction(_tx1559())
    assert info.value.exit_code == 3


def test_blind_signing_off_refuses_contract_data(device, ledger):
    device.blind_signing = False
    ledger.sign_transaction(_tx1559())  # a plain transfer is fine
    with pytest.raises(Refused, match="Blind signing"):
        ledger.sign_transaction(_tx1559(data=b"\xa9\x05\x9c\xbb"))


def test_app_too_old_for_eip1559_is_a_config_error(device):
    device.app_version = (1, 8, 5)
    with pytest.raises(ConfigError, match="too old"):
        _ = LedgerSigner(dongle=device).address


def test_device_signing_with_another_key_is_refused(device, ledger, alerts):
    _ = ledger.address
    device.sign_with_key = bytes(Account.create().key)
    with pytest.raises(SignatureMismatch):
        ledger.sign_transaction(_tx1559())
    with pytest.raises(SignatureMismatch):
        ledger.sign_message(b"gm")
    with pytest.raises(SignatureMismatch):
        ledger.sign_typed_data(TYPED_DATA)
    assert len(alerts) == 3


def test_high_s_from_the_device_is_refused(device, ledger):
    device.high_s = True
    with pytest.raises(SignatureMismatch, match="high s"):
        ledger.sign_transaction(_tx1559())
    with pytest.raises(SignatureMismatch, match="high s"):
        ledger.sign_message(b"gm")


def test_a_corrupt_address_answer_is_refused(device):
    class Corrupting(EmulatedLedger):
        def process(self, command):
            data, sw = super().process(command)
            if command[1] == apdu.INS_GET_PUBLIC_ADDRESS and sw == 0x9000:
                data = data[:67] + keccak(b"other")[:20].hex().encode()  # text != key
            return data, sw

    with pytest.raises(SignatureMismatch, match="showed address"):
        _ = LedgerSigner(dongle=Corrupting()).address


def test_emulator_answers_protocol_errors_like_the_app(device):
    from ledgerblue.commException import CommException

    def status(command: bytes) -> int:
        try:
            device.exchange(command, timeout=1)
        except CommException as exc:
            return exc.sw
        return 0x9000

    path = apdu.encode_path(apdu.DEFAULT_PATH)
    assert status(bytes([0xE1, 0x02, 0, 0, len(path)]) + path) == 0x6E00  # wrong CLA
    assert status(apdu.command(0x7F, 0, 0, path)) == 0x6D00  # unknown INS
    assert status(apdu.command(apdu.INS_GET_PUBLIC_ADDRESS, 0x05, 0, path)) == 0x6B00
    assert status(bytes([0xE0, 0x02, 0, 0, 30]) + path) == 0x6700  # Lc lies
    assert status(apdu.command(apdu.INS_SIGN_TRANSACTION, 0x80, 0, b"\x01")) == 0x6985
    typed3 = path + b"\x03\xc0"
    assert status(apdu.command(apdu.INS_SIGN_TRANSACTION, 0x00, 0, typed3)) == 0x6501


@pytest.mark.parametrize("bad", ["44'/60'/0'/0/x", "", "1/2/3/4/5/6/7/8/9/10/11", "44'/4294967296"])
def test_bad_derivation_paths_are_config_errors(bad):
    with pytest.raises(ConfigError):
        LedgerSigner(bad)


def test_derivation_path_encoding():
    assert apdu.encode_path("m/44h/60h/0h/0/7") == bytes.fromhex(
        "058000002c8000003c800000000000000000000007"
    )


def test_production_transport_without_a_device_is_an_infra_error():
    # The real path: ledgereth opens ledgerblue's HID transport. There is no Ledger here.
    with pytest.raises(InfraError, match="Ledger"):
        open_hid_dongle()
