"""The journal stays crash-safe when its state dir is encrypted: kill the executor after a
step, restart it in a new process that unwraps the data key from state-key.json alone (a
file keyring in the test's temp dir), and find exactly one transaction on chain."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from web3 import Web3

from defiagent.chain.anvil import Anvil
from defiagent.devchain.deploy import create_pool, deploy_uniswap_v2
from defiagent.execution.journal import Journal, State
from defiagent.state_crypto.active import open_state_encryption
from defiagent.toolchain import repo_root
from tests.execution.conftest import ok_outcome, wrap_call
from tests.execution.crash_runner import CRASH_EXIT
from tests.execution.signer import ThrowawaySigner
from tests.execution.test_crash import txs_from
from tests.simulation.helpers import fund
from tests.state_crypto.conftest import forget

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chain_w3(tmp_path_factory):
    with Anvil(log_dir=tmp_path_factory.mktemp("chain")) as node:
        yield node, Web3(Web3.HTTPProvider(node.url))


@pytest.fixture(scope="module")
def dex(chain_w3):
    return create_pool(chain_w3[1], deploy_uniswap_v2(chain_w3[1]), 10**24, 2 * 10**24)


def run_child(job: dict, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tests.execution.crash_runner"],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        cwd=repo_root(),
        env=env,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("step", ["after-sign", "after-send"])
def test_crash_with_a_sealed_journal_never_sends_twice(
    step, chain_w3, dex, state_dir, tmp_path, monkeypatch, keyring_settings, file_keyring
):
    chain, w3 = chain_w3
    signer = ThrowawaySigner()
    fund(w3, dex, signer.address, token_a=10**21)
    # The children find the same file keyring through the keyring package's own settings.
    data_home = tmp_path / "data"
    monkeypatch.setenv("XDG_DATA_HOME", str(data_home))
    file_keyring.file_path = str(data_home / "python_keyring" / "keyring_pass.cfg")
    open_state_encryption(state_dir, keyring_settings)
    env = {**os.environ, "PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring"}
    call = wrap_call(dex, signer.address, intent_id=f"sealed-crash-{step}")
    job = {
        "rpc": chain.url,
        "journal": str(state_dir / "journal.sqlite"),
        "key": signer.export_key_for_child_process(),
        "call": call.model_dump(mode="json"),
        "outcome": ok_outcome().model_dump(mode="json"),
    }
    crashed = run_child({**job, "crash_at": step}, env)
    assert crashed.returncode == CRASH_EXIT, crashed.stderr
    raw = (state_dir / "journal.sqlite").read_bytes() + b"".join(
        p.read_bytes() for p in state_dir.glob("journal.sqlite-wal")
    )
    assert b"dfa-enc1:" in raw  # what the child journaled is sealed
    restarted = run_child({**job, "crash_at": None, "reconcile": True}, env)
    assert restarted.returncode == 0, restarted.stderr
    assert len(txs_from(w3, signer.address)) == 1
    forget(state_dir)
    with Journal(state_dir / "journal.sqlite") as journal:
        entry = journal.get(call.journal_key)
        assert entry.state == State.CONFIRMED
        assert journal.attempts(call.journal_key)[0].raw.startswith("0x02")
