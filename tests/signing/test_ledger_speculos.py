"""The agent's Ledger signer against the real Ethereum app (1.9.17, Nano X) in Speculos.

The production transport (ledgerblue's TCP framing, as with LEDGER_PROXY_ADDRESS/PORT), the
app's own parser, screens and status words, a person at the buttons (the auto-approver).
One Speculos for the module (blind signing turned on through the settings menu); tests
that quit the app or stop the device get one of their own.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from ledgerblue.commException import CommException

from defiagent.errors import DefiagentError, InfraError
from defiagent.execution.executor import Executor
from defiagent.execution.fees import FeePolicy, quote
from defiagent.execution.planner import Planner, ProtocolAddresses
from defiagent.signing import ledger_apdu as apdu
from defiagent.signing.base import SignatureMismatch, Signer
from defiagent.signing.config import LedgerSignerConfig, build_signer
from defiagent.signing.ledger import FLAG_BLIND_SIGNING, LedgerSigner
from defiagent.signing.testing.ledger_emulator import EmulatedLedger
from defiagent.signing.testing.speculos import APP_VERSION
from defiagent.signing.transactions import prepare_transaction
from defiagent.strategy.intents import SwapExactIn
from tests.guard import world
from tests.signing.helpers import TYPED_DATA, run_on_anvil
from tests.signing.speculos import address_of

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ledger-speculos")]

TO = "0x000000000000000000000000000000000000bEEF"
PATH = apdu.encode_path(apdu.DEFAULT_PATH)
E18 = 10**18


class Recording:
    """A transport that keeps every APDU the signer sent (and is otherwise the real one)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.apdus: list[bytes] = []

    @property
    def socket(self):  # so the signer bounds the TCP wait as it does for the real one
        return self.inner.socket

    def exchange(self, command: bytes, timeout: int = 20000) -> bytearray:
        self.apdus.append(bytes(command))
        return self.inner.exchange(command, timeout)

    def close(self) -> None:
        self.inner.close()

    def signing(self) -> list[bytes]:
        return [a for a in self.apdus if a[1] == apdu.INS_SIGN_TRANSACTION]


def _tx1559(**extra) -> dict:
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


def _legacy(**extra) -> dict:
    return {
        "chainId": 1,
        "nonce": 0,
        "to": TO,
        "value": 1,
        "gas": 90000,
        "gasPrice": 10**9,
        **extra,
    }


def _payload_length(tx: dict) -> int:
    return len(PATH) + len(prepare_transaction(tx).preimage)


def _with_payload_length(make, target: int) -> dict:
    """A transaction from `make(data=...)` whose path + unsigned RLP is `target` bytes."""
    for size in range(1, 700):
        tx = make(data=b"\x5a" * size)
        if _payload_length(tx) == target:
            return tx
    raise AssertionError(f"no calldata size gives a {target}-byte payload")


def _legacy_with_boundary_at_255() -> dict:
    """A legacy tx whose data field ends exactly where a naive 255-byte chunk would end."""
    for size in range(150, 260):
        tx = _legacy(data=b"\x11" * size)
        if len(PATH) + apdu.legacy_eip155_offset(prepare_transaction(tx).preimage) == 255:
            return tx
    raise AssertionError("no data size puts the EIP-155 tail at the chunk boundary")


def _shown(review, title: str) -> str:
    """What the device showed under `title`, its pages and lines joined."""
    parts = [
        "".join(lines[1:])
        for lines in review.screens
        if lines and (lines[0] == title or lines[0].startswith(f"{title} ("))
    ]
    return "".join(parts).replace(" ", "")


def _agent_calls(agent: str):
    """The approve and the swap the agent sends for a swap of 7 DTKN with no allowance:
    planned by the real planner (Uniswap V2 Router02 swapExactTokensForTokens)."""
    planner = Planner(agent, ProtocolAddresses(router=world.ROUTER, weth=world.WETH))
    intent = SwapExactIn(
        token_in=world.DTKN, token_out=world.DUSD, amount_in=7 * E18, min_amount_out=3 * E18
    )
    approve, swap = planner.plan(intent, world.market(), world.portfolio())
    return approve, swap


def _as_sent(call, tx_type: int, nonce: int) -> dict:
    """The transaction the executor builds for a call (its own `_tx`), or the same call as a
    legacy EIP-155 transaction."""
    fees = quote(FeePolicy(), base_fee=10**9)
    executor = SimpleNamespace(chain_id=world.CHAIN)
    tx = Executor._tx(executor, call.target, call.value, call.data, 200_000, nonce, fees)
    if tx_type == 0:
        for key in ("type", "maxFeePerGas", "maxPriorityFeePerGas", "accessList"):
            del tx[key]
        tx["gasPrice"] = fees.max_fee_per_gas
    return tx


# --- the app and the address ------------------------------------------------------------


def test_app_version_and_the_blind_signing_flag(speculos_ledger, speculos):
    flags, version = speculos_ledger.app_configuration()
    assert version == APP_VERSION
    assert flags & FLAG_BLIND_SIGNING  # turned on by the fixture through the settings menu
    assert speculos.started_in is not None
    assert speculos.started_in < 30


def test_address_without_confirmation(speculos, approver):
    shown_before = len(approver.reviews)
    default = LedgerSigner(dongle=speculos.dongle())
    try:
        assert isinstance(default, Signer)
        assert default.address == address_of(speculos.mnemonic)
    finally:
        default.close()
    second = LedgerSigner("m/44'/60'/1'/0/0", dongle=speculos.dongle())
    try:
        assert second.address == address_of(speculos.mnemonic, "m/44'/60'/1'/0/0")
        assert second.address != address_of(speculos.mnemonic)
    finally:
        second.close()
    assert len(approver.reviews) == shown_before  # nothing was shown on the device


def test_address_confirmed_on_the_device(speculos_ledger, speculos, approver):
    assert speculos_ledger.confirm_address() == address_of(speculos.mnemonic)
    review = approver.settled()
    assert review.outcome == "approved"
    assert review.screens[0] == ["Verify", "address"]
    assert _shown(review, "Address").lower() == address_of(speculos.mnemonic).lower()
    with approver.deciding("reject"), pytest.raises(apdu.LedgerRejected) as info:
        speculos_ledger.confirm_address()
    assert info.value.exit_code == 1
    assert str(info.value) == "the address confirmation was rejected on the Ledger"


def test_a_pinned_address_must_match_the_device(speculos, approver, alerts):
    signer = LedgerSigner(dongle=speculos.dongle(), expected_address=Account.create().address)
    try:
        with pytest.raises(SignatureMismatch, match="not the configured"):
            _ = signer.address
    finally:
        signer.close()
    assert alerts


# --- transactions -----------------------------------------------------------------------


def test_signs_on_anvil_and_a_rejection_sends_nothing(w3, speculos_ledger, approver):
    run_on_anvil(w3, speculos_ledger)  # an EIP-1559 and a legacy transfer, mined
    reviews = [r for r in approver.reviews if r.screens[0] == ["Review", "transaction"]][-2:]
    assert [_shown(r, "Network") for r in reviews] == ["31337", "31337"]
    address = speculos_ledger.address
    tx = {**_tx1559(), "nonce": 2, "maxFeePerGas": 10 * 10**9}
    with approver.deciding("reject"), pytest.raises(apdu.LedgerRejected) as info:
        speculos_ledger.sign_transaction(tx)
    assert isinstance(info.value, DefiagentError)
    assert info.value.exit_code == 1
    assert str(info.value) == "the transaction was rejected on the Ledger"
    assert approver.settled().outcome == "rejected"
    assert w3.eth.get_transaction_count(address, "pending") == 2  # nothing went out


@pytest.mark.parametrize("tx_type", [2, 0], ids=["eip1559", "legacy"])
def test_the_agents_approve_and_swap(speculos_ledger, approver, tx_type):
    address = speculos_ledger.address
    approve, swap = _agent_calls(address)
    for nonce, call in enumerate((approve, swap)):
        tx = _as_sent(call, tx_type, nonce)
        signed = speculos_ledger.sign_transaction(tx)
        assert Account.recover_transaction(signed.raw) == address
        assert signed.chain_id == world.CHAIN
        first = bytes.fromhex(signed.raw[2:])[0]
        assert first == 2 if tx_type == 2 else first >= 0xC0  # typed, or a bare RLP list
        review = approver.settled()
        assert review.outcome == "approved"
        assert ["Blind", "Signing"] in review.screens  # contract data: blind signed
        assert _shown(review, "Address").lower() == call.target.lower()  # token, then router
        assert _shown(review, "Network") == str(world.CHAIN)
    assert len(bytes.fromhex(swap.data[2:])) > apdu.MAX_CHUNK  # the swap took two chunks


def test_a_plain_transfer_needs_no_blind_signing(speculos_ledger, approver):
    signed = speculos_ledger.sign_transaction(_tx1559())
    assert Account.recover_transaction(signed.raw) == speculos_ledger.address
    assert ["Blind", "Signing"] not in approver.settled().screens
    assert _shown(approver.settled(), "Address").lower() == TO.lower()


@pytest.mark.parametrize(
    ("make", "target"),
    [(_tx1559, 254), (_tx1559, 255), (_tx1559, 256), (_tx1559, 511), (_legacy, 256)],
    ids=["1559-254", "1559-255", "1559-256", "1559-511", "legacy-256"],
)
def test_chunking_at_the_apdu_boundaries(speculos, approver, make, target):
    tx = _with_payload_length(make, target)
    recording = Recording(speculos.dongle())
    signer = LedgerSigner(dongle=recording)
    try:
        signed = signer.sign_transaction(tx)
    finally:
        signer.close()
    assert Account.recover_transaction(signed.raw) == address_of(speculos.mnemonic)
    assert signed.chain_id == tx["chainId"]
    chunks = recording.signing()
    assert len(chunks) == -(-target // apdu.MAX_CHUNK)
    assert [c[2] for c in chunks] == [0x00] + [0x80] * (len(chunks) - 1)
    assert all(c[0] == apdu.CLA and c[4] == len(c) - 5 <= apdu.MAX_CHUNK for c in chunks)
    assert b"".join(c[5:] for c in chunks) == PATH + prepare_transaction(tx).preimage


def test_naive_chunking_at_the_eip155_marker_gets_a_chainless_signature(speculos, approver):
    # The real app treats a legacy tx cut right after its data field as pre-EIP-155 and
    # signs what it has, showing network 0: the trap the signer's chunking avoids.
    tx = _legacy_with_boundary_at_255()
    payload = PATH + prepare_transaction(tx).preimage
    dongle = speculos.dongle()
    try:
        answer = dongle.exchange(apdu.command(apdu.INS_SIGN_TRANSACTION, 0x00, 0x00, payload[:255]))
    finally:
        dongle.close()
    assert len(answer) == 65
    assert answer[0] in (27, 28)  # no chain id in v
    assert _shown(approver.settled(), "Network") == "0"


def test_the_signer_avoids_the_eip155_marker_boundary(speculos, approver):
    tx = _legacy_with_boundary_at_255()
    recording = Recording(speculos.dongle())
    signer = LedgerSigner(dongle=recording)
    try:
        signed = signer.sign_transaction(tx)
    finally:
        signer.close()
    assert signed.chain_id == 1
    assert Account.recover_transaction(signed.raw) == address_of(speculos.mnemonic)
    assert len(recording.signing()[0]) - 5 == 254
    assert _shown(approver.settled(), "Network") == ""  # chain 1: no network screen, not "0"


@pytest.mark.parametrize("chain_id", [137, 11155111])  # 1: the EIP-155 marker test
def test_legacy_v_byte_is_rebuilt_for_large_chain_ids(speculos_ledger, chain_id):
    # chainId*2+35 does not fit the app's one-byte v; the signer rebuilds it.
    signed = speculos_ledger.sign_transaction(_legacy(chainId=chain_id))
    assert signed.chain_id == chain_id
    assert Account.recover_transaction(signed.raw) == speculos_ledger.address


# --- messages and typed data --------------------------------------------------------------


def test_eip191_messages_short_and_long(speculos_ledger, approver):
    for message in (b"hello", bytes(range(256)) * 4):  # one APDU, then five
        signature = speculos_ledger.sign_message(message)
        signable = encode_defunct(primitive=message)
        assert Account.recover_message(signable, signature=signature) == speculos_ledger.address
        # App 1.9.17 shows the SHA-256 of the message, not its text.
        shown = _shown(approver.settled(), "Message hash")
        assert shown.upper() == hashlib.sha256(message).hexdigest().upper()


def test_eip712_hashed_mode(speculos_ledger, approver):
    signature = speculos_ledger.sign_typed_data(TYPED_DATA)
    signable = encode_typed_data(full_message=TYPED_DATA)
    assert Account.recover_message(signable, signature=signature) == speculos_ledger.address
    review = approver.settled()
    assert review.screens[0] == ["ign", "typed message"]  # "Sign" beside an icon
    assert _shown(review, "Domain hash").lower() == "0x" + bytes(signable.header).hex()
    assert _shown(review, "Message hash").lower() == "0x" + bytes(signable.body).hex()


def test_rejecting_a_message_or_typed_data_is_a_refusal(speculos_ledger, approver):
    _ = speculos_ledger.address
    with approver.deciding("reject"):
        for call, what in (
            (lambda: speculos_ledger.sign_message(b"no"), "the message"),
            (lambda: speculos_ledger.sign_typed_data(TYPED_DATA), "the typed data"),
        ):
            with pytest.raises(apdu.LedgerRejected) as info:
                call()
            assert info.value.exit_code == 1
            assert str(info.value) == f"{what} was rejected on the Ledger"
            assert approver.settled().screens[-1] == ["Cancel", "signature"]


# --- the app's refusals -------------------------------------------------------------------


def test_blind_signing_off_is_reported_as_such(speculos, speculos_ledger, approver):
    approve, _ = _agent_calls(speculos_ledger.address)
    assert speculos.set_blind_signing(False) is False
    try:
        speculos_ledger.sign_transaction(_tx1559())  # a plain transfer is fine
        with pytest.raises(apdu.LedgerDataRefused) as info:
            speculos_ledger.sign_transaction(_as_sent(approve, 2, 1))
        assert info.value.exit_code == 1
        message = str(info.value)
        assert "blind signing (contract data) is not enabled on the device" in message
        assert "enable blind signing / contract data" in message
        approver.wait_for(lambda review: review.outcome == "blind-signing-disabled")
        # The device said so too ("Blind signing must be enabled in Settings"; the text
        # read back misses the S), and the person dismissed it.
        assert "Blind signing must be enabled in" in " ".join(approver.settled().screens[0])
    finally:
        assert speculos.set_blind_signing(True) is True
    assert speculos_ledger.sign_transaction(_as_sent(approve, 2, 1))


def test_the_apps_own_refusal_with_blind_signing_on(speculos_ledger):
    # The app's ERC-20 parser refuses an approve that also sends ETH, blind signing or not.
    approve, _ = _agent_calls(speculos_ledger.address)
    tx = {**_as_sent(approve, 2, 0), "value": 1}
    with pytest.raises(apdu.LedgerDataRefused, match="although blind signing is enabled"):
        speculos_ledger.sign_transaction(tx)


def test_the_emulator_answers_protocol_errors_like_the_real_app(speculos, approver):
    # Keeps the fault-injection emulator honest where both can be asked the same thing.
    # (One known difference: app 1.9.17 ignores an Lc that disagrees with the data it got,
    # which the emulator refuses with 0x6700; the signer always sends the right Lc.)
    probes = [
        bytes([0xE1, 0x02, 0, 0, len(PATH)]) + PATH,  # wrong CLA
        apdu.command(0x7F, 0, 0, PATH),  # unknown INS
        apdu.command(apdu.INS_GET_PUBLIC_ADDRESS, 0x05, 0, PATH),  # bad P1
        apdu.command(apdu.INS_SIGN_TRANSACTION, 0x80, 0, b"\x01"),  # continuation first
        apdu.command(apdu.INS_SIGN_TRANSACTION, 0x00, 0, PATH + b"\x03\xc0"),  # blob tx
    ]

    def status(device, command: bytes) -> int:
        try:
            device.exchange(command, timeout=1)
        except CommException as exc:
            return exc.sw
        return 0x9000

    dongle = speculos.dongle()
    try:
        real = [status(dongle, p) for p in probes]
    finally:
        dongle.close()
    emulated = [status(EmulatedLedger(speculos.mnemonic), p) for p in probes]
    assert real == emulated == [0x6E00, 0x6D00, 0x6B00, 0x6985, 0x6501]


# --- the person, the transport, the device going away --------------------------------------


def test_timeout_when_nobody_confirms(speculos, approver):
    signer = LedgerSigner(dongle=speculos.dongle(), timeout=1.0)
    try:
        _ = signer.address
        with approver.deciding("ignore"), pytest.raises(apdu.LedgerTimeout) as info:
            signer.sign_transaction(_tx1559())
        assert info.value.exit_code == 3
        assert "did not answer the transaction within 1 s" in str(info.value)
    finally:
        signer.close()
    # The review is still on the screen: the person rejects it, and the device goes on.
    with approver.deciding("reject"):
        assert approver.settled(timeout=10).outcome == "rejected"
    again = LedgerSigner(dongle=speculos.dongle())
    try:
        assert again.sign_message(b"still here")
    finally:
        again.close()


def test_the_production_transport_through_the_ledger_proxy(speculos, approver, monkeypatch):
    import ledgerblue.comm
    import ledgereth.comms

    # What LEDGER_PROXY_ADDRESS/PORT select when set before ledgerblue is imported.
    monkeypatch.setattr(ledgerblue.comm, "TCP_PROXY", (speculos.host, speculos.apdu_port))
    monkeypatch.setattr(ledgereth.comms, "DONGLE_CACHE", None)
    monkeypatch.setattr(ledgereth.comms, "DONGLE_CONFIG_CACHE", None)
    signer = build_signer(LedgerSignerConfig(backend="ledger"))  # opens it like a USB Ledger
    try:
        assert signer.address == address_of(speculos.mnemonic)
        assert signer.sign_message(b"through ledgereth and ledgerblue")
    finally:
        signer.close()


def test_the_cli_reaches_it_through_the_environment(speculos, approver, tmp_path):
    cli = Path(sys.executable).parent / "defiagent"
    config = tmp_path / "agent.toml"
    config.write_text('[signer]\nbackend = "ledger"\nderivation_path = "44\'/60\'/0\'/0/3"\n')
    env = {**os.environ, **speculos.env()}
    argv = [str(cli), "signer", "address", "--config", str(config), "--confirm", "--json"]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["address"] == address_of(speculos.mnemonic, "m/44'/60'/0'/0/3")
    assert doc["confirmed_on_device"] is True
    assert approver.settled().outcome == "approved"


def test_the_app_quitting_is_an_infrastructure_error(fresh_speculos, monkeypatch):
    signer = LedgerSigner(dongle=fresh_speculos.dongle(), timeout=10)
    assert signer.address == address_of(fresh_speculos.mnemonic)
    fresh_speculos.quit_app()  # Quit in the app's menu: the device goes to its dashboard
    with pytest.raises(InfraError) as info:
        signer.sign_message(b"anyone there?")
    assert info.value.exit_code == 3
    assert "closed the connection during the message" in str(info.value)
    assert "open the Ethereum app" in str(info.value)
    # Opened afresh through the production path: nothing answers any more.
    import ledgerblue.comm
    import ledgereth.comms

    monkeypatch.setattr(
        ledgerblue.comm, "TCP_PROXY", (fresh_speculos.host, fresh_speculos.apdu_port)
    )
    monkeypatch.setattr(ledgereth.comms, "DONGLE_CACHE", None)
    monkeypatch.setattr(ledgereth.comms, "DONGLE_CONFIG_CACHE", None)
    with pytest.raises(apdu.LedgerNotFound, match="no Ledger answered") as info:
        _ = build_signer(LedgerSignerConfig(backend="ledger")).address
    assert info.value.exit_code == 3


def test_the_device_going_away_mid_request_is_an_infrastructure_error(fresh_speculos):
    signer = LedgerSigner(dongle=fresh_speculos.dongle(), timeout=30)
    _ = signer.address

    def pull_the_plug() -> None:  # once the review is on the screen, nobody answering it
        fresh_speculos.wait_for(lambda lines: lines[:1] == ["Review"])
        fresh_speculos.stop()

    plug = threading.Thread(target=pull_the_plug)
    plug.start()
    began = time.monotonic()
    with pytest.raises(InfraError) as info:
        signer.sign_transaction(_tx1559())
    plug.join()
    assert time.monotonic() - began < 15
    assert info.value.exit_code == 3
    assert "closed the connection during the transaction" in str(info.value)
    assert "no signature came back" in str(info.value)
