"""The executor signs only what passed, within the caps, once, and records every step."""

from __future__ import annotations

import time

import pytest
from eth_account import Account

from defiagent.errors import InfraError, Refused
from defiagent.execution.executor import Executor
from defiagent.execution.fees import GWEI, FeePolicy
from defiagent.execution.journal import Journal, State
from defiagent.signing.base import SignatureMismatch
from defiagent.simulation.models import SimulationOutcome
from tests.execution.conftest import ONE, Switch, ok_outcome, wrap_call
from tests.execution.signer import RedirectingSigner
from tests.simulation.helpers import approve_call, fund, swap_call

pytestmark = pytest.mark.slow


def weth_balance(w3, dex, who) -> int:
    data = "0x70a08231" + who[2:].lower().rjust(64, "0")
    return int(w3.eth.call({"to": dex.weth, "data": data}).hex(), 16)


def test_approve_and_swap_are_executed_confirmed_and_audited(w3, dex, signer, make_executor, audit):
    executor = make_executor(signer)
    approve = approve_call(dex.token_a, dex.router, ONE, signer.address, intent_id="s1")
    swap = swap_call(dex, dex.token_a, dex.token_b, ONE, 1, signer.address, intent_id="s1")

    first = executor.execute(approve, ok_outcome(60_000))
    second = executor.execute(swap, ok_outcome(150_000))

    assert (first.state, second.state) == (State.CONFIRMED, State.CONFIRMED)
    assert (first.nonce, second.nonce) == (0, 1)
    receipt = w3.eth.get_transaction_receipt(second.tx_hash)
    assert receipt["status"] == 1
    tx = w3.eth.get_transaction(second.tx_hash)
    assert (tx["to"], tx["value"], tx["type"]) == (dex.router, 0, 2)
    assert "0x" + bytes(tx["input"]).hex() == swap.data
    assert [k for k in audit.kinds if k != "execution.reconciled"][:4] == [
        "execution.planned",
        "execution.signed",
        "execution.sent",
        "execution.confirmed",
    ]
    secret = signer.export_key_for_child_process().removeprefix("0x")
    assert all(secret not in repr(payload) for _, payload in audit.events)


def test_a_journaled_call_is_never_executed_twice(w3, dex, signer, make_executor):
    executor = make_executor(signer)
    call = wrap_call(dex, signer.address)
    executor.execute(call, ok_outcome())
    with pytest.raises(Refused, match="already in the journal as confirmed"):
        executor.execute(call, ok_outcome())
    # A restart does not forget it either.
    again = make_executor(signer)
    with pytest.raises(Refused, match="never executed again"):
        again.execute(call, ok_outcome())
    assert w3.eth.get_transaction_count(signer.address) == 1
    assert weth_balance(w3, dex, signer.address) == ONE


def test_kill_switch_on_before_signing_signs_nothing(w3, dex, signer, make_executor):
    executor = make_executor(signer, switch=Switch(on=True))
    with pytest.raises(Refused, match="kill switch is on"):
        executor.execute(wrap_call(dex, signer.address), ok_outcome())
    assert signer.calls == 0
    assert executor.journal.entries() == []


def test_kill_switch_pulled_between_signing_and_sending_sends_nothing(
    w3, dex, signer, make_executor
):
    # Reads: before planning, before signing, then on before sending.
    executor = make_executor(signer, switch=Switch(after=2))
    call = wrap_call(dex, signer.address)
    with pytest.raises(Refused, match="before sending"):
        executor.execute(call, ok_outcome())
    assert signer.calls == 1
    assert w3.eth.get_transaction_count(signer.address) == 0
    entry = executor.journal.get(call.journal_key)
    assert entry.state == State.ABORTED
    assert "discarded unsent" in entry.reason
    # The unsent nonce is free again: the next call uses it, no gap stalls the account.
    executor.kill_switch = Switch()
    result = executor.execute(wrap_call(dex, signer.address, intent_id="wrap-2"), ok_outcome())
    assert (result.state, result.nonce) == (State.CONFIRMED, 0)


def test_unreadable_kill_switch_counts_as_on(dex, signer, make_executor):
    class Broken:
        def is_on(self):
            raise OSError("switch file unreadable")

    executor = make_executor(signer, switch=Broken())
    with pytest.raises(Refused, match="could not be read"):
        executor.execute(wrap_call(dex, signer.address), ok_outcome())
    assert signer.calls == 0


def test_base_fee_above_the_cap_is_refused(w3, dex, signer, make_executor):
    base = w3.eth.get_block("latest")["baseFeePerGas"]
    fees = FeePolicy(
        max_fee_per_gas=base,
        max_priority_fee_per_gas=base // 2 or 1,
        priority_fee_per_gas=base // 2 or 1,
    )
    executor = make_executor(signer, fees=fees)
    call = wrap_call(dex, signer.address)
    with pytest.raises(Refused, match="exceeds the fee cap"):
        executor.execute(call, ok_outcome())
    assert signer.calls == 0
    assert executor.journal.get(call.journal_key).state == State.ABORTED


def test_gas_limit_over_cap_is_refused(dex, signer, make_executor):
    executor = make_executor(signer, fees=FeePolicy(max_gas_limit=100_000))
    with pytest.raises(Refused, match="above the cap of 100,000"):
        executor.execute(wrap_call(dex, signer.address), ok_outcome(gas=90_000))
    assert signer.calls == 0


def test_failed_simulation_is_not_signed(dex, signer, make_executor):
    executor = make_executor(signer)
    failed = SimulationOutcome(success=False, revert_reason="K", gas_used=1, block_number=0)
    with pytest.raises(Refused, match="simulation"):
        executor.execute(wrap_call(dex, signer.address), failed)
    assert signer.calls == 0


def test_signer_that_signs_something_else_is_refused_and_nothing_is_sent(w3, dex, make_executor):
    evil = RedirectingSigner()
    fund(w3, dex, evil.address)
    executor = make_executor(evil)
    call = wrap_call(dex, evil.address)
    with pytest.raises(SignatureMismatch):
        executor.execute(call, ok_outcome())
    assert w3.eth.get_transaction_count(evil.address) == 0
    assert executor.journal.get(call.journal_key).state == State.ABORTED


def test_call_from_another_address_is_refused(dex, signer, make_executor):
    executor = make_executor(signer)
    with pytest.raises(Refused, match="signer is"):
        executor.execute(wrap_call(dex, Account.create().address), ok_outcome())


def test_reconcile_rebroadcasts_the_same_signed_bytes(w3, dex, signer, make_executor):
    executor = make_executor(signer)
    call = wrap_call(dex, signer.address)
    signed = executor.sign(call, ok_outcome())  # then "crash" before sending
    restarted = make_executor(signer)
    with pytest.raises(Refused, match="reconcile"):
        restarted.execute(wrap_call(dex, signer.address, intent_id="other"), ok_outcome())
    (result,) = restarted.reconcile()
    assert result.state == State.CONFIRMED
    assert result.tx_hash == signed.hash
    assert w3.eth.get_transaction_count(signer.address) == 1


def test_signed_tx_whose_nonce_went_elsewhere_is_marked_dropped(w3, dex, signer, make_executor):
    executor = make_executor(signer)
    call = wrap_call(dex, signer.address)
    signed = executor.sign(call, ok_outcome())
    # Something else (another wallet using the same key) takes nonce 0 first.
    other = signer.sign_transaction(
        {
            "type": 2,
            "chainId": 31337,
            "nonce": 0,
            "to": signer.address,
            "value": 0,
            "gas": 21_000,
            "maxFeePerGas": 10 * GWEI,
            "maxPriorityFeePerGas": GWEI,
            "data": "0x",
            "accessList": [],
        }
    )
    w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(other.raw))
    (result,) = make_executor(signer).reconcile()
    assert result.state == State.DROPPED
    assert "nonce 0 was used" in result.reason
    assert w3.eth.get_transaction_count(signer.address) == 1
    assert other.hash != signed.hash


def test_a_receipt_lagging_the_nonce_count_is_waited_for_not_called_dropped(
    w3, dex, signer, make_executor, monkeypatch
):
    """Behind one RPC URL a node may count our mined nonce while another does not serve the
    receipt yet: within the grace period the entry stays pending, then it is confirmed."""
    import defiagent.execution.executor as executor_module

    real = executor_module.find_mined
    hidden_until = time.monotonic() + 0.6

    def lagging(rpc, hashes, confirmations):
        return None if time.monotonic() < hidden_until else real(rpc, hashes, confirmations)

    monkeypatch.setattr(executor_module, "find_mined", lagging)
    executor = make_executor(signer, drop_grace_seconds=2.0)
    result = executor.execute(wrap_call(dex, signer.address), ok_outcome())
    assert result.state == State.CONFIRMED
    # With no grace the same lag is (wrongly) read as someone else's transaction: the
    # grace is what keeps a mined trade from being called dropped and made again.
    hidden_until = time.monotonic() + 0.6
    hasty = make_executor(signer, drop_grace_seconds=0.0)
    call = wrap_call(dex, signer.address, intent_id="wrap-2")
    assert hasty.execute(call, ok_outcome()).state == State.DROPPED


def test_rpc_down_fails_closed(dex, signer, tmp_path):
    with (
        Journal(tmp_path / "j.sqlite") as journal,
        pytest.raises(InfraError, match="did not answer"),
    ):
        Executor("http://127.0.0.1:9", signer, journal, FeePolicy(), kill_switch=Switch())


def test_a_second_executor_on_the_same_journal_is_refused(tmp_path):
    with Journal(tmp_path / "j.sqlite"), pytest.raises(InfraError, match="only one may run"):
        Journal(tmp_path / "j.sqlite")


def test_journal_is_in_wal_mode_with_full_sync(tmp_path):
    with Journal(tmp_path / "j.sqlite") as journal:
        assert journal._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert journal._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
