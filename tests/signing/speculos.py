"""Fixtures for the real Ledger Ethereum app (1.9.17, Nano X) running in Speculos.

`speculos`: one emulator per test module, with a throwaway mnemonic generated for it, its
blind-signing setting turned on through the app's settings menu, stopped after the module.
`approver`: the person at the device (an `AutoApprover` thread reading the screen through
Speculos's REST API); each test starts with it approving, `approver.deciding("reject")`
or `"ignore"` changes that. `speculos_ledger`: the agent's `LedgerSigner` over ledgerblue's
TCP transport to it, closed after the test. `fresh_speculos`: an emulator of the test's
own, for tests that quit the app or stop the device.

Wired into tests/signing/conftest.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from eth_account import Account
from eth_account.hdaccount import generate_mnemonic, key_from_seed, seed_from_mnemonic
from eth_account.types import Language

from defiagent.signing.ledger import LedgerSigner
from defiagent.signing.testing.speculos import AutoApprover, Speculos


def address_of(mnemonic: str, path: str = "m/44'/60'/0'/0/0") -> str:
    """The address a BIP-39 mnemonic gives at `path`, derived here, independently of the
    device (eth-account's BIP-32)."""
    return Account.from_key(key_from_seed(seed_from_mnemonic(mnemonic, ""), path)).address


def _start(tmp_path_factory, *, blind_signing: bool) -> Speculos:
    mnemonic = generate_mnemonic(12, Language.ENGLISH)
    device = Speculos(mnemonic, log_dir=tmp_path_factory.mktemp("speculos")).start()
    try:
        if blind_signing:
            device.set_blind_signing(True)
    except BaseException:
        device.stop()
        raise
    return device


@pytest.fixture(scope="module")
def speculos(tmp_path_factory) -> Iterator[Speculos]:
    """The Ethereum app in Speculos for this module, blind signing on."""
    device = _start(tmp_path_factory, blind_signing=True)
    try:
        yield device
    finally:
        device.stop()


@pytest.fixture(scope="module")
def _module_approver(speculos) -> Iterator[AutoApprover]:
    with AutoApprover(speculos) as approver:
        yield approver


@pytest.fixture
def approver(_module_approver) -> Iterator[AutoApprover]:
    """The module's auto-approver, approving at the start of each test."""
    _module_approver.decision = "approve"
    _module_approver.errors.clear()
    yield _module_approver
    _module_approver.decision = "approve"
    assert not _module_approver.errors, _module_approver.errors


@pytest.fixture
def speculos_ledger(speculos, approver) -> Iterator[LedgerSigner]:
    """The agent's Ledger signer, connected to the module's Speculos over TCP."""
    signer = LedgerSigner(dongle=speculos.dongle(), timeout=30.0)
    try:
        yield signer
    finally:
        signer.close()


@pytest.fixture
def fresh_speculos(tmp_path_factory) -> Iterator[Speculos]:
    """An emulator of the test's own (blind signing off), for tests that end it."""
    device = _start(tmp_path_factory, blind_signing=False)
    try:
        yield device
    finally:
        device.stop()
