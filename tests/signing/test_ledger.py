"""Ledger signer against the home-made emulator: only the faults the real app cannot make.

Everything the real Ethereum app can do (addresses, confirmation, transactions of each
type with and without calldata, chunking at the APDU boundaries and the EIP-155 trap,
EIP-191, EIP-712, rejection, blind signing off, timeouts, the app quitting, the device
going away) is tested against the real app 1.9.17 in Speculos: test_ledger_speculos.py.

What stays here needs a device that misbehaves or a state Speculos 0.9.7 cannot put the
app in: a locked device and an app that is not open (their status words: Speculos has no
PIN screen, and quitting the app ends Speculos itself), an app too old for EIP-1559 (one
app version here), a device that signs with another key or returns a high s, an address
answer whose text and key disagree (garbled answers), and ledgerblue's HID timeout, which
the TCP transport never raises. Plus the path parsing, which needs no device.
"""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_utils import keccak

from defiagent.errors import ConfigError, InfraError
from defiagent.signing import ledger_apdu as apdu
from defiagent.signing.base import SignatureMismatch
from defiagent.signing.ledger import LedgerSigner, open_hid_dongle
from defiagent.signing.testing.ledger_emulator import EmulatedLedger
from tests.signing.helpers import TYPED_DATA

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
