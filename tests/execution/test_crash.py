"""Kill the executor after each journal step, restart it, and find exactly one transaction."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from defiagent.execution.executor import STEPS
from defiagent.execution.journal import Journal, State
from defiagent.toolchain import repo_root
from tests.execution.conftest import ONE, ok_outcome, wrap_call
from tests.execution.crash_runner import CRASH_EXIT

pytestmark = pytest.mark.slow


def run_child(job: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tests.execution.crash_runner"],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        cwd=repo_root(),
        timeout=60,
        check=False,
    )


def txs_from(w3, sender: str) -> list[str]:
    """Every transaction `sender` has in the chain, block by block."""
    found = []
    for number in range(w3.eth.block_number + 1):
        for tx in w3.eth.get_block(number, full_transactions=True)["transactions"]:
            if tx["from"] == sender:
                found.append("0x" + bytes(tx["hash"]).hex())
    return found


def weth_of(w3, dex, who) -> int:
    return int(
        w3.eth.call({"to": dex.weth, "data": "0x70a08231" + who[2:].lower().rjust(64, "0")}).hex(),
        16,
    )


@pytest.mark.parametrize("step", STEPS)
def test_crash_at_any_step_never_sends_twice_nor_loses_the_tx(
    step, chain, w3, dex, signer, tmp_path
):
    call = wrap_call(dex, signer.address, intent_id=f"crash-{step}")
    job = {
        "rpc": chain.url,
        "journal": str(tmp_path / "journal.sqlite"),
        "key": signer.export_key_for_child_process(),
        "call": call.model_dump(mode="json"),
        "outcome": ok_outcome().model_dump(mode="json"),
    }

    crashed = run_child({**job, "crash_at": step})
    assert crashed.returncode == CRASH_EXIT, crashed.stderr

    # The agent restarts: reconcile, then the loop proposes the same intent again.
    restarted = run_child({**job, "crash_at": None, "reconcile": True})
    assert restarted.returncode == 0, restarted.stderr
    report = json.loads(restarted.stdout)

    sent = txs_from(w3, signer.address)
    assert len(sent) == 1, f"{len(sent)} transactions on chain after a crash {step}"
    assert w3.eth.get_transaction_count(signer.address) == 1
    assert weth_of(w3, dex, signer.address) == ONE
    with Journal(job["journal"]) as journal:
        entry = journal.get(call.journal_key)
    assert entry.state == State.CONFIRMED
    assert entry.tx_hash == sent[0]
    if step == "after-plan":
        # Nothing was signed before the crash: reconcile says so, and the retry sends it.
        assert report["reconciled"][0]["state"] == "planned"
        assert report["executed"]["state"] == "confirmed"
    else:
        # The journaled transaction is settled by reconcile; the retry is refused.
        assert report["reconciled"][0]["state"] == "confirmed"
        assert "never executed again" in report["refused"]
