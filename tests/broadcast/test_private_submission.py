"""Private submission through a real relay emulator (HTTP JSON-RPC) in front of a real anvil:
included, dropped (expired, reported, never sent publicly unless configured; then once),
delayed (included later, or past its window), an approve+swap bundle landing whole or not
at all, and the emulator's reordering."""

from __future__ import annotations

import pytest
from eth_account import Account
from web3 import Web3

from defiagent.broadcast import PrivateSubmitter, PublicSubmitter
from defiagent.chain.anvil import Anvil
from defiagent.chain.rpc import JsonRpcClient
from defiagent.devchain import artifacts
from defiagent.devchain.deploy import create_pool, deploy_uniswap_v2
from defiagent.errors import Refused
from defiagent.execution.executor import Executor
from defiagent.execution.fees import FeePolicy
from defiagent.execution.journal import Journal, State
from defiagent.execution.models import ExpectedDelta, PlannedCall
from defiagent.simulation.models import SimulationOutcome
from defiagent.testing.relay import RelayEmulator
from tests.execution.signer import ThrowawaySigner
from tests.simulation.helpers import approve_call, fund, swap_call

ONE = 10**18


class Off:
    def is_on(self) -> bool:
        return False


class ListAudit:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []

    def record(self, kind, payload) -> None:
        self.events.append((kind, payload))

    def of(self, kind: str) -> list[dict]:
        return [p for k, p in self.events if k == kind]


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    with Anvil(log_dir=tmp_path_factory.mktemp("chain")) as node:
        yield node


@pytest.fixture(scope="module")
def w3(chain) -> Web3:
    return Web3(Web3.HTTPProvider(chain.url))


@pytest.fixture(scope="module")
def dex(w3):
    return create_pool(w3, deploy_uniswap_v2(w3), 10**24, 2 * 10**24)


@pytest.fixture(scope="module")
def relay_server(chain):
    with RelayEmulator(chain.url) as relay:
        yield relay


@pytest.fixture
def relay(relay_server):
    relay_server.reset()
    yield relay_server
    relay_server.reset()


@pytest.fixture
def signer(w3, dex) -> ThrowawaySigner:
    s = ThrowawaySigner()
    fund(w3, dex, s.address, token_a=10 * ONE)
    return s


@pytest.fixture
def audit() -> ListAudit:
    return ListAudit()


@pytest.fixture
def make(chain, relay, tmp_path, audit):
    """An executor sending through the relay; `fallback`, `max_blocks` as [broadcast] has."""
    opened: list[Journal] = []

    def build(signer, *, fallback="none", max_blocks=25, public=False) -> Executor:
        journal = Journal(tmp_path / f"journal-{len(opened)}.sqlite")
        opened.append(journal)
        rpc = JsonRpcClient(chain.url)
        submitter = (
            PublicSubmitter(rpc)
            if public
            else PrivateSubmitter(
                relay.url, rpc, audit=audit, max_blocks=max_blocks, fallback=fallback
            )
        )
        return Executor(
            chain.url,
            signer,
            journal,
            FeePolicy(),
            kill_switch=Off(),
            audit=audit,
            receipt_timeout=10.0,
            poll_interval=0.02,
            submitter=submitter,
        )

    yield build
    for j in opened:
        j.close()


def wrap(dex, sender: str, intent_id: str = "wrap-1") -> PlannedCall:
    return PlannedCall(
        intent_id=intent_id,
        intent_kind="wrap",
        target=dex.weth,
        data="0xd0e30db0",
        value=ONE,
        sender=sender,
        expected=[ExpectedDelta(token=None, min_delta=-ONE)],
        description="wrap 1 ETH",
    )


def ok(gas: int = 60_000) -> SimulationOutcome:
    return SimulationOutcome(success=True, gas_used=gas, block_number=0)


def nonce(w3, address) -> int:
    return w3.eth.get_transaction_count(address, "latest")


def test_included_privately_and_tracked_on_chain(make, relay, signer, w3, dex, audit):
    executor = make(signer)
    head = w3.eth.block_number
    result = executor.execute(wrap(dex, signer.address), ok())
    assert result.state == State.CONFIRMED
    assert w3.eth.get_transaction_receipt(result.tx_hash)["status"] == 1
    [params] = relay.calls("eth_sendPrivateTransaction")
    assert int(params[0]["maxBlockNumber"], 16) == head + 25
    assert params[0]["preferences"] == {"fast": False, "privacy": {"hints": ["hash"]}}
    assert relay.find(result.tx_hash)[0].state == "included"
    assert not relay.calls("eth_sendRawTransaction")
    [submitted] = audit.of("broadcast.private-submitted")
    assert submitted["max_block_number"] == head + 25
    assert submitted["relay"] == relay.url
    assert audit.of("execution.sent")[0]["via"] == "private"


def test_dropped_expires_is_reported_and_never_sent_publicly(make, relay, signer, w3, dex, audit):
    relay.configure(drop=True)
    executor = make(signer, max_blocks=3)
    start = nonce(w3, signer.address)
    with relay.producing_blocks(0.02):
        result = executor.execute(wrap(dex, signer.address), ok())
    assert result.state == State.EXPIRED
    assert "not sent publicly" in result.reason
    assert f"nonce {start} is free" in result.reason
    assert w3.eth.get_transaction_count(signer.address, "latest") == start
    with pytest.raises(Exception, match="not found"):
        w3.eth.get_transaction(result.tx_hash)  # the chain never saw it
    [expired] = audit.of("execution.expired")
    assert expired["head"] > expired["max_block_number"]
    assert audit.of("broadcast.cancel-requested")  # the relay was told to drop it
    assert not audit.of("broadcast.fallback-public")
    assert not audit.of("broadcast.public-sent")

    # Trying to get it out anyway: a reconcile leaves an expired entry alone (no re-send).
    sent_before = len(relay.requests)
    assert executor.reconcile() == []
    assert len(relay.requests) == sent_before

    # Its nonce is handed to the next transaction, which lands: no gap, nothing stuck.
    relay.configure(drop=False)
    nxt = executor.execute(wrap(dex, signer.address, intent_id="wrap-2"), ok())
    assert nxt.state == State.CONFIRMED
    assert nxt.nonce == start
    assert nonce(w3, signer.address) == start + 1


def test_a_resend_keeps_its_window(make, relay, signer, w3, dex):
    # reconcile() re-sends a pending private transaction each tick: its window must not
    # slide, or a relay that never includes it would hold the nonce for ever.
    relay.configure(drop=True)
    executor = make(signer, max_blocks=5)
    call = wrap(dex, signer.address)
    executor.sign(call, ok())
    attempt = executor.journal.attempts(call.journal_key)[-1]
    executor.submitter.submit(attempt.raw, attempt.tx_hash)
    relay.mine(3)
    executor.submitter.submit(attempt.raw, attempt.tx_hash)
    first, again = relay.calls("eth_sendPrivateTransaction")
    assert first[0]["maxBlockNumber"] == again[0]["maxBlockNumber"]
    with relay.producing_blocks(0.02):
        result = executor.wait(call.journal_key)
    assert result.state == State.EXPIRED
    assert int(first[0]["maxBlockNumber"], 16) == executor.submitter.window(attempt.tx_hash)


def test_dropped_with_public_fallback_goes_public_once(make, relay, signer, w3, dex, audit):
    relay.configure(drop=True)
    executor = make(signer, max_blocks=3, fallback="public")
    start = nonce(w3, signer.address)
    with relay.producing_blocks(0.02):
        result = executor.execute(wrap(dex, signer.address), ok())
    assert result.state == State.CONFIRMED
    assert nonce(w3, signer.address) == start + 1
    assert len(audit.of("broadcast.fallback-public")) == 1
    assert len(audit.of("broadcast.public-sent")) == 1
    assert len(audit.of("execution.sent-public-after-expiry")) == 1
    # Once: the submitter will not fall back a second time for the same transaction.
    assert executor.submitter.fall_back(result.tx_hash) is False
    assert relay.find(result.tx_hash)[0].state in ("cancelled", "expired")


def test_delayed_is_included_later_and_tracked(make, relay, signer, w3, dex, audit):
    relay.configure(delay_blocks=4)
    executor = make(signer, max_blocks=10)
    head = w3.eth.block_number
    with relay.producing_blocks(0.02):
        result = executor.execute(wrap(dex, signer.address), ok())
    assert result.state == State.CONFIRMED, result.reason
    [held] = relay.find(result.tx_hash)
    assert held.block == result.block_number == held.received_at_block + 1 + 4  # held 4 blocks
    assert result.block_number > head + 4
    [submitted] = audit.of("broadcast.private-submitted")
    assert result.block_number <= submitted["max_block_number"]


def test_delayed_past_its_window_expires(make, relay, signer, w3, dex, audit):
    relay.configure(delay_blocks=6)  # the relay would hold it past maxBlockNumber
    executor = make(signer, max_blocks=4)
    start = nonce(w3, signer.address)
    with relay.producing_blocks(0.02):
        result = executor.execute(wrap(dex, signer.address), ok())
    assert result.state == State.EXPIRED
    assert nonce(w3, signer.address) == start
    [expired] = audit.of("execution.expired")
    with relay.producing_blocks(0.02):  # past the relay's hold too: it never lands later on
        later = expired["max_block_number"] + 4
        assert relay.wait_until(lambda: w3.eth.block_number >= later)
    assert relay.find(result.tx_hash)[0].state in ("expired", "cancelled")
    assert nonce(w3, signer.address) == start


def _allowance(w3, dex, owner) -> int:
    erc20 = w3.eth.contract(address=dex.token_a, abi=artifacts.demo_token().abi)
    return erc20.functions.allowance(owner, dex.router).call()


def test_bundle_approve_and_swap_land_together(make, relay, signer, w3, dex, audit):
    executor = make(signer)
    amount = ONE
    items = [
        (approve_call(dex.token_a, dex.router, amount, signer.address), ok(60_000)),
        (swap_call(dex, dex.token_a, dex.token_b, amount, 1, signer.address), ok(200_000)),
    ]
    approve, swap = executor.execute_bundle(items)
    assert approve.state == swap.state == State.CONFIRMED
    assert approve.block_number == swap.block_number  # one block
    assert swap.nonce == approve.nonce + 1
    receipts = [w3.eth.get_transaction_receipt(r.tx_hash) for r in (approve, swap)]
    assert receipts[1]["transactionIndex"] == receipts[0]["transactionIndex"] + 1
    [bundle] = audit.of("broadcast.bundle-submitted")
    assert bundle["tx_hashes"] == [approve.tx_hash, swap.tx_hash]
    assert bundle["last_block"] - bundle["first_block"] == 24
    assert relay.calls("eth_sendBundle")[0][0]["txs"][0].lower().startswith("0x02")


def test_a_bundle_whose_swap_reverts_lands_not_even_its_approve(make, relay, signer, w3, dex):
    executor = make(signer, max_blocks=3)
    start = nonce(w3, signer.address)
    amount = ONE
    items = [
        (approve_call(dex.token_a, dex.router, amount, signer.address), ok(60_000)),
        # min-out far above what the pool gives: the swap reverts, so the bundle cannot land
        (swap_call(dex, dex.token_a, dex.token_b, amount, 10**30, signer.address), ok(200_000)),
    ]
    with relay.producing_blocks(0.02):
        results = executor.execute_bundle(items)
    assert [r.state for r in results] == [State.EXPIRED, State.EXPIRED]
    assert nonce(w3, signer.address) == start
    assert _allowance(w3, dex, signer.address) == 0  # the approve was not left behind


def test_public_mode_refuses_a_bundle_and_frees_its_nonces(make, signer, w3, dex):
    executor = make(signer, public=True)
    items = [
        (approve_call(dex.token_a, dex.router, ONE, signer.address), ok(60_000)),
        (swap_call(dex, dex.token_a, dex.token_b, ONE, 1, signer.address), ok(200_000)),
    ]
    with pytest.raises(Refused, match="all together or not at all"):
        executor.execute_bundle(items)
    states = [executor.journal.get(c.journal_key).state for c, _ in items]
    assert states == [State.ABORTED, State.ABORTED]
    assert executor.journal.highest_held_nonce(signer.address) is None


def test_the_relay_reorders_what_it_holds(relay, w3, dex):
    senders = [Account.create(), Account.create()]
    for s in senders:
        fund(w3, dex, s.address)
    raws = []
    for s in senders:
        tx = {
            "type": 2,
            "chainId": w3.eth.chain_id,
            "nonce": 0,
            "to": s.address,
            "value": 1,
            "gas": 21_000,
            "maxFeePerGas": 10**10,
            "maxPriorityFeePerGas": 10**9,
        }
        raws.append("0x" + s.sign_transaction(tx).raw_transaction.hex().removeprefix("0x"))
    client = JsonRpcClient(relay.url)
    relay.configure(paused=True, reorder=True)
    hashes = [client.call("eth_sendPrivateTransaction", {"tx": raw}) for raw in raws]
    relay.configure(paused=False)
    assert relay.wait_until(lambda: all(h.state == "included" for h in relay.held))
    first, second = (w3.eth.get_transaction_receipt(h) for h in hashes)
    assert first["blockNumber"] == second["blockNumber"]
    assert second["transactionIndex"] < first["transactionIndex"]  # last in, first out


def test_requests_carry_the_identity_signature_the_relay_checks(
    chain, relay, signer, w3, dex, tmp_path, audit
):
    identity = Account.create()  # a searcher reputation key: no funds, not the trading key
    relay.configure(require_signature=True)
    journal = Journal(tmp_path / "signed.sqlite")
    rpc = JsonRpcClient(chain.url)
    signed = PrivateSubmitter(relay.url, rpc, audit=audit, auth_key=identity.key.hex())
    executor = Executor(
        chain.url,
        signer,
        journal,
        FeePolicy(),
        kill_switch=Off(),
        audit=audit,
        receipt_timeout=10.0,
        poll_interval=0.02,
        submitter=signed,
    )
    result = executor.execute(wrap(dex, signer.address), ok())
    assert result.state == State.CONFIRMED
    assert set(relay.signers) == {identity.address}

    # Unsigned, the relay refuses it: nothing went out, the entry is aborted, its nonce free.
    unsigned = PrivateSubmitter(relay.url, rpc, audit=audit)
    executor.submitter = unsigned
    start = nonce(w3, signer.address)
    with pytest.raises(Refused, match="X-Flashbots-Signature"):
        executor.execute(wrap(dex, signer.address, intent_id="wrap-2"), ok())
    assert executor.journal.get(wrap(dex, signer.address, "wrap-2").journal_key).state == (
        State.ABORTED
    )
    assert nonce(w3, signer.address) == start
    journal.close()
