"""Stuck transactions: replaced at the same nonce with bumped fees, or cancelled, within caps."""

from __future__ import annotations

import pytest

from defiagent.errors import Refused
from defiagent.execution.fees import GWEI, FeePolicy, Fees, bump, quote
from defiagent.execution.journal import State
from tests.execution.conftest import ONE, Switch, ok_outcome, wrap_call

pytestmark = pytest.mark.slow

POLICY = FeePolicy(
    max_fee_per_gas=50 * GWEI, max_priority_fee_per_gas=5 * GWEI, priority_fee_per_gas=GWEI
)


def test_quote_respects_caps():
    assert quote(POLICY, 10 * GWEI) == Fees(
        max_fee_per_gas=21 * GWEI, max_priority_fee_per_gas=GWEI
    )
    assert quote(POLICY, 40 * GWEI).max_fee_per_gas == 50 * GWEI  # headroom clipped at the cap
    with pytest.raises(Refused, match=r"base fee is 49\.5 gwei"):
        quote(POLICY, 49_500_000_000)


def test_bump_raises_both_fees_by_at_least_ten_percent():
    previous = Fees(max_fee_per_gas=21 * GWEI, max_priority_fee_per_gas=GWEI)
    new = bump(POLICY, previous, 10 * GWEI)
    assert new.max_fee_per_gas * 100 >= previous.max_fee_per_gas * 110
    assert new.max_priority_fee_per_gas * 100 >= previous.max_priority_fee_per_gas * 110
    assert new.max_fee_per_gas <= POLICY.max_fee_per_gas


def test_bump_beyond_the_cap_is_refused():
    with pytest.raises(Refused, match="above the cap"):
        bump(POLICY, Fees(max_fee_per_gas=48 * GWEI, max_priority_fee_per_gas=GWEI), GWEI)
    with pytest.raises(Refused, match="tip"):
        bump(POLICY, Fees(max_fee_per_gas=20 * GWEI, max_priority_fee_per_gas=5 * GWEI), GWEI)


@pytest.fixture
def no_automine(w3, signer):  # after the signer is funded
    w3.provider.make_request("evm_setAutomine", [False])
    yield
    w3.provider.make_request("evm_setAutomine", [True])


def _stuck(w3, dex, signer, make_executor, **kw):
    executor = make_executor(signer, fees=POLICY, **kw)
    executor.receipt_timeout = 0.2
    call = wrap_call(dex, signer.address)
    result = executor.execute(call, ok_outcome())
    assert result.state == State.SENT  # nothing mines it
    return executor, call, result


@pytest.mark.usefixtures("no_automine")
def test_stuck_tx_is_replaced_at_the_same_nonce_and_only_one_lands(
    w3, dex, signer, make_executor, audit
):
    executor, call, first = _stuck(w3, dex, signer, make_executor)
    pending = executor.bump(call.journal_key)
    assert pending.state == State.SENT
    w3.provider.make_request("evm_mine", [])
    result = executor.wait(call.journal_key, timeout=5)

    assert result.state == State.CONFIRMED
    assert result.tx_hash != first.tx_hash
    attempts = executor.journal.attempts(call.journal_key)
    assert [a.state for a in attempts] == ["replaced", "mined"]
    assert attempts[1].nonce == attempts[0].nonce == 0
    assert attempts[1].max_fee_per_gas * 100 >= attempts[0].max_fee_per_gas * 110
    assert w3.eth.get_transaction_count(signer.address) == 1
    assert "execution.replacement-signed" in audit.kinds


@pytest.mark.usefixtures("no_automine")
def test_stuck_tx_is_cancelled_even_with_the_kill_switch_on(w3, dex, signer, make_executor):
    executor, call, _ = _stuck(w3, dex, signer, make_executor)
    executor.kill_switch = Switch(on=True)
    with pytest.raises(Refused, match="kill switch"):
        executor.bump(call.journal_key)  # a speed-up sends the trade: refused
    executor.bump(call.journal_key, cancel=True)
    w3.provider.make_request("evm_mine", [])
    result = executor.wait(call.journal_key, timeout=5)
    assert result.state == State.CANCELLED
    tx = w3.eth.get_transaction(result.tx_hash)
    assert (tx["to"], tx["value"]) == (signer.address, 0)
    assert w3.eth.get_transaction_count(signer.address) == 1
    assert w3.eth.get_balance(signer.address) > 10 * ONE - ONE // 100  # the 1 ETH never left


@pytest.mark.usefixtures("no_automine")
def test_replace_stuck_picks_old_sent_entries(w3, dex, signer, make_executor):
    executor, call, _ = _stuck(w3, dex, signer, make_executor)
    assert executor.replace_stuck(older_than=3600) == []
    (result,) = executor.replace_stuck(older_than=0)
    assert len(executor.journal.attempts(call.journal_key)) == 2
    assert result.key == call.journal_key
