"""The signer process, attacked from its own socket: every forged transaction refused with
the guard's rule and reason, the honest ones signed; other users kept out; the wire capped.

One signer process (`defiagent signer serve`, a real subprocess) on a real anvil chain with
the real Uniswap V2 stack and a signed allowlist. Requests are sent the way a compromised
agent process would: straight to the socket, bypassing the agent's guard.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import time
import urllib.request

import pytest
from eth_account import Account
from web3 import Web3

from defiagent.agent.devnet import UNIT, deploy_market, fund
from defiagent.chain.anvil import Anvil
from defiagent.errors import InfraError, Refused
from defiagent.guard.calldata import encode_call
from defiagent.monitoring.audit_log import verify_audit_log
from defiagent.monitoring.kill_switch import KillSwitch
from defiagent.protocols.erc20 import functions as erc20
from defiagent.protocols.uniswap_v2 import functions as v2fn
from defiagent.signing.config import build_signer, parse_signer_config
from defiagent.signing.remote.client import RemoteSigner, SignerRefused
from defiagent.signing.remote.fixtures import market_contracts, write_signed_allowlist
from defiagent.signing.remote.server import AUDIT_FILE
from tests.signing.remote_support import (
    PASSWORD_ENV,
    free_metrics_port,
    new_keystore,
    serve,
    wait_for,
    write_signer_config,
)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("remote-signer")]
OUTSIDER = Account.create().address
UNLIMITED = 2**256 - 1


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    with Anvil(log_dir=tmp_path_factory.mktemp("chain")) as node:
        yield node


@pytest.fixture(scope="module")
def w3(chain):
    return Web3(Web3.HTTPProvider(chain.url))


@pytest.fixture(scope="module")
def market(w3):
    return deploy_market(w3)


@pytest.fixture(scope="module")
def signer(chain, w3, market, tmp_path_factory):
    folder = tmp_path_factory.mktemp("signer")
    allowlist = write_signed_allowlist(
        w3, folder / "allowlist", market.dex.chain_id, market_contracts(market)
    )
    key, password = new_keystore(folder / "key.json")
    d = market.dex
    config, sock, state = write_signer_config(
        folder,
        rpc_url=chain.url,
        chain_id=d.chain_id,
        allowlist_dir=allowlist,
        signer_table={"backend": "keystore", "path": str(key), "password_env": PASSWORD_ENV},
        prices={"ETH": 2_000.0, d.token_a: 1.0, d.token_b: 1.0, d.weth: 2_000.0},
        limits={
            "per_tx_value_cap": {"max_value": 2_000},
            "window_value_cap": {"max_value": 10_000, "window_seconds": 86_400},
            "approvals": {"max_value": 2_000},
        },
        metrics_port=free_metrics_port(),
    )
    with serve(config, sock, state, password) as running:
        fund(w3, market, running.address, eth=10 * UNIT, dusd=50_000 * UNIT, dtkn=50_000 * UNIT)
        yield running


@pytest.fixture
def client(signer):
    remote = RemoteSigner(signer.socket, expected_address=signer.address, timeout=5)
    yield remote
    remote.close()


def tx(w3, signer, to, data, *, value=0, chain_id=None, nonce=None):
    return {
        "type": 2,
        "chainId": chain_id or w3.eth.chain_id,
        "nonce": w3.eth.get_transaction_count(signer.address) if nonce is None else nonce,
        "to": to,
        "value": value,
        "data": data,
        "gas": 300_000,
        "maxFeePerGas": 5 * 10**9,
        "maxPriorityFeePerGas": 10**9,
        "accessList": [],
    }


def swap(market, amount, to, deadline=None):
    d = market.dex
    return encode_call(
        v2fn.SWAP_EXACT_IN,
        [amount, 1, [d.token_a, d.token_b], to, deadline or int(time.time()) + 600],
    )


def refused(client, transaction) -> SignerRefused:
    with pytest.raises(SignerRefused) as info:
        client.sign_transaction(transaction)
    return info.value


def test_the_agent_side_holds_no_credential(signer):
    remote = build_signer(parse_signer_config({"backend": "remote", "socket": str(signer.socket)}))
    assert isinstance(remote, RemoteSigner)
    assert remote.address == signer.address
    assert set(vars(remote)) <= {
        "socket_path",
        "timeout",
        "_expected",
        "_address",
        "_conn",
        "_lock",
    }


def test_an_honest_approve_and_swap_are_signed_and_mined(w3, market, signer, client):
    d = market.dex
    approve = encode_call(erc20.APPROVE, [d.router, 500 * UNIT])
    signed = client.sign_transaction(tx(w3, signer, d.token_a, approve))
    assert (
        w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw))["status"] == 1
    )
    signed = client.sign_transaction(
        tx(w3, signer, d.router, swap(market, 500 * UNIT, signer.address))
    )
    assert (
        w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw))["status"] == 1
    )


@pytest.mark.parametrize(
    ("what", "rule"),
    [
        ("token transfer to an outsider", "function-in-scope"),
        ("swap paying an outsider", "recipient-is-self"),
        ("unlimited approve to the router", "approval-bounded"),
        ("approve to an outsider", "spender-allowlisted"),
        ("call to an unknown contract", "target-allowlisted"),
        ("ETH sent straight to an outsider", "contract-call-only"),
        ("contract creation", "contract-call-only"),
        ("another chain", "chain-matches"),
        ("a deadline a day away", "deadline-bounded"),
        ("a swap above the per-transaction cap", "value-cap-per-tx"),
        ("a fee above the cap", "fee-cap"),
    ],
)
def test_a_forged_transaction_is_refused_with_the_rule(w3, market, signer, client, what, rule):
    d = market.dex
    cases = {
        "token transfer to an outsider": tx(
            w3, signer, d.token_a, encode_call("transfer(address,uint256)", [OUTSIDER, UNIT])
        ),
        "swap paying an outsider": tx(w3, signer, d.router, swap(market, UNIT, OUTSIDER)),
        "unlimited approve to the router": tx(
            w3, signer, d.token_a, encode_call(erc20.APPROVE, [d.router, UNLIMITED])
        ),
        "approve to an outsider": tx(
            w3, signer, d.token_a, encode_call(erc20.APPROVE, [OUTSIDER, UNIT])
        ),
        "call to an unknown contract": tx(w3, signer, OUTSIDER, "0x12345678"),
        "ETH sent straight to an outsider": tx(w3, signer, OUTSIDER, "0x", value=UNIT),
        "contract creation": {**tx(w3, signer, None, "0x6000"), "to": None},
        "another chain": tx(w3, signer, d.router, swap(market, UNIT, signer.address), chain_id=1),
        "a deadline a day away": tx(
            w3, signer, d.router, swap(market, UNIT, signer.address, int(time.time()) + 86_400)
        ),
        "a swap above the per-transaction cap": tx(
            w3, signer, d.router, swap(market, 2_000 * UNIT + 1, signer.address)
        ),
        "a fee above the cap": {
            **tx(w3, signer, d.router, swap(market, UNIT, signer.address)),
            "maxFeePerGas": 500 * 10**9,
        },
    }
    error = refused(client, cases[what])
    assert error.rule == rule, error.reason
    assert error.reason


def test_the_limits_hold_on_both_sides(w3, market, signer, client):
    d = market.dex
    # Values are floats (numeraire per smallest unit): a hair under and over the cap.
    under, over = 1_999_999 * UNIT // 1_000, 2_000_001 * UNIT // 1_000
    at_cap = tx(w3, signer, d.router, swap(market, under, signer.address))
    assert client.sign_transaction(at_cap).sender == signer.address
    assert (
        refused(client, tx(w3, signer, d.router, swap(market, over, signer.address))).rule
        == "value-cap-per-tx"
    )
    approve_under = tx(w3, signer, d.token_a, encode_call(erc20.APPROVE, [d.router, under]))
    assert client.sign_transaction(approve_under)
    approve_over = tx(w3, signer, d.token_a, encode_call(erc20.APPROVE, [d.router, over]))
    assert refused(client, approve_over).rule == "approval-bounded"


def test_the_window_cap_counts_what_was_signed(w3, market, signer, client):
    """Re-signing one nonce (a fee bump) counts once; new nonces add up to the cap."""
    d = market.dex
    base = w3.eth.get_transaction_count(signer.address) + 100
    signed, refusal = 0, None
    for i in range(10):
        call = tx(w3, signer, d.router, swap(market, 1_999 * UNIT, signer.address), nonce=base + i)
        try:
            client.sign_transaction(call)
            client.sign_transaction({**call, "maxFeePerGas": 6 * 10**9})  # same nonce again
        except SignerRefused as exc:
            refusal = exc
            break
        signed += 1
    assert refusal is not None, "the window cap never refused"
    assert refusal.rule == "value-cap-per-window", refusal.reason
    assert 1 <= signed < 5  # 10,000 per window; earlier tests spent some of it


def test_a_target_whose_code_changed_is_refused(w3, market, signer, client):
    d = market.dex
    original = w3.eth.get_code(d.token_a)
    w3.provider.make_request("anvil_setCode", [d.token_a, "0x6000"])
    try:
        approve = tx(w3, signer, d.token_a, encode_call(erc20.APPROVE, [d.router, UNIT]))
        error = refused(client, approve)
        assert error.rule == "codehash-pinned"
        assert "changed since it was approved" in error.reason
        # A path token changed counts too: the swap names it.
        assert (
            refused(client, tx(w3, signer, d.router, swap(market, UNIT, signer.address))).rule
            == "codehash-pinned"
        )
    finally:
        w3.provider.make_request("anvil_setCode", [d.token_a, original.to_0x_hex()])
    assert client.sign_transaction(
        tx(w3, signer, d.token_a, encode_call(erc20.APPROVE, [d.router, UNIT]))
    )


def test_the_signers_own_kill_switch_stops_everything(w3, market, signer, client):
    d = market.dex
    switch = KillSwitch(signer.state_dir)
    switch.set(True, reason="incident drill")
    try:
        error = refused(
            client, tx(w3, signer, d.token_a, encode_call(erc20.APPROVE, [d.router, UNIT]))
        )
        assert error.rule == "kill-switch-off"
        assert "incident drill" in error.reason
    finally:
        switch.set(False)


def test_messages_other_than_probes_and_typed_data_are_refused(signer, client):
    assert client.sign_message(b"defiagent signer check 1")
    with pytest.raises(SignerRefused, match="probe"):
        client.sign_message(b"I authorise the transfer of everything")
    with pytest.raises(Refused, match="typed data"):
        client.sign_typed_data({"types": {}, "primaryType": "Permit", "domain": {}, "message": {}})


# --- the wire -------------------------------------------------------------------------------


def raw_exchange(path, payload: bytes, *, timeout=3.0) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        s.sendall(payload)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def answer(data: bytes) -> dict:
    (size,) = struct.unpack(">I", data[:4])
    return json.loads(data[4 : 4 + size])


def frame(doc) -> bytes:
    body = json.dumps(doc).encode()
    return struct.pack(">I", len(body)) + body


def test_malformed_requests_are_refused_and_the_connection_closed(w3, market, signer):
    assert "outside" in answer(raw_exchange(signer.socket, struct.pack(">I", 10_000_000)))["error"]
    assert (
        "not UTF-8 JSON"
        in answer(raw_exchange(signer.socket, frame("x")[:4] + b"\xff\xfe\x00"))["error"]
    )
    extra = {"op": "address", "please": "sign anything"}
    assert "not valid" in answer(raw_exchange(signer.socket, frame(extra)))["error"]
    big = {
        "op": "sign_transaction",
        "tx": {**tx(w3, signer, market.dex.router, "0x"), "nonce": 2**70},
    }
    assert "nonce" in answer(raw_exchange(signer.socket, frame(big)))["error"]
    # A frame that never completes is dropped after the request deadline (1 s here).
    t0 = time.monotonic()
    assert raw_exchange(signer.socket, struct.pack(">I", 100) + b"{", timeout=5) == b""
    assert time.monotonic() - t0 < 4


def test_a_connection_from_another_uid_is_refused(signer, tmp_path):
    if os.getuid() != 0:
        pytest.skip("running a client under another uid needs root (setuid in a forked child)")
    nobody = 65534

    def as_nobody(action) -> int:
        pid = os.fork()
        if pid == 0:  # the child: drop to another user, then try the socket
            code = 99
            try:
                os.setgid(nobody)
                os.setuid(nobody)
                code = action()
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)

    def try_connect() -> int:
        for _ in range(3):  # a loaded machine may time a connection out: try again
            try:  # the signer answers a refused peer first, without reading what it sends
                reply = raw_exchange(signer.socket, b"", timeout=10.0)
            except PermissionError:
                return 13
            except OSError:
                continue
            return 0 if reply and "may not use this signer" in answer(reply)["error"] else 1
        return 12

    # The socket (0600, in a 0700 folder) is closed to another user by the file system...
    assert as_nobody(try_connect) == 13
    # ...and were its permissions opened by mistake, the peer uid check still refuses it.
    folder_mode = signer.socket.parent.stat().st_mode & 0o777
    signer.socket.parent.chmod(0o711)
    signer.socket.chmod(0o666)
    try:
        assert as_nobody(try_connect) == 0
    finally:
        signer.socket.chmod(0o600)
        signer.socket.parent.chmod(folder_mode)
    log = signer.state_dir / AUDIT_FILE
    assert wait_for(lambda: f'"uid":{nobody}' in log.read_text().replace(" ", ""), 20)
    assert '"signer-peer-refused"' in log.read_text()


def test_refusals_are_audited_counted_and_alerted(signer, w3, market, client):
    d = market.dex
    client.sign_transaction(tx(w3, signer, d.token_a, encode_call(erc20.APPROVE, [d.router, UNIT])))
    refused(client, tx(w3, signer, d.router, swap(market, UNIT, OUTSIDER)))
    log = signer.state_dir / AUDIT_FILE

    # Written by the signer's background writer, right after it answered.
    def written() -> bool:
        text = log.read_text()
        return OUTSIDER in text and text.rfind('"alert"') > text.find(OUTSIDER)

    assert wait_for(written, 20)
    # The writer may be between the three steps of an append: each state verifies.
    assert wait_for(lambda: verify_audit_log(log).ok, 10), verify_audit_log(log).problem
    records = [
        json.loads(line) for line in (signer.state_dir / AUDIT_FILE).read_text().splitlines()
    ]
    kinds = [r["kind"] for r in records]
    assert kinds[0] == "signer-start"
    assert "signer-signed" in kinds
    assert "alert" in kinds
    refusal = next(
        r
        for r in records
        if r["kind"] == "signer-refused" and r["payload"]["rule"] == "recipient-is-self"
    )
    assert OUTSIDER in refusal["payload"]["reason"]
    url = f"http://127.0.0.1:{signer.metrics_port}/metrics"
    assert wait_for(
        lambda: b"defiagent_signer_refusals_total" in urllib.request.urlopen(url).read()
    )
    text = urllib.request.urlopen(url).read().decode()
    line = next(
        x
        for x in text.splitlines()
        if x.startswith('defiagent_signer_refusals_total{rule="recipient-is-self"}')
    )
    assert float(line.split()[-1]) >= 1


def test_no_signer_listening_is_an_infrastructure_error(tmp_path):
    with pytest.raises(InfraError, match="no signer is listening"):
        _ = RemoteSigner(tmp_path / "nothing.sock").address


def test_a_signature_waits_for_its_audit_record_and_is_withheld_if_it_cannot_be_written():
    from defiagent.errors import InfraError
    from defiagent.signing.remote.server import BackgroundAudit

    class Log:
        def __init__(self, fail: bool) -> None:
            self.fail, self.records = fail, []

        def record(self, kind, payload):
            if self.fail:
                raise OSError("disk full")
            self.records.append(kind)

        def close(self):
            pass

    ok = BackgroundAudit(Log(fail=False))
    ok.record("signer-refused", {})
    ok.record_durably("signer-signed", {})
    assert ok.log.records == ["signer-refused", "signer-signed"]  # written, in order
    ok.close()
    broken = BackgroundAudit(Log(fail=True))
    with pytest.raises(InfraError, match="does not release the signature"):
        broken.record_durably("signer-signed", {})
    broken.close()
