"""`defiagent signer rotate` on a real chain: afterwards the old address holds no funds and
no allowances, everything is at the new address, every step is in the signer's audit log,
and the old credential is refused (retired; a KMS key disabled in KMS itself)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from eth_account import Account
from web3 import Web3

from defiagent.agent.devnet import UNIT, deploy_market, fund
from defiagent.chain.anvil import Anvil
from defiagent.guard.calldata import encode_call
from defiagent.monitoring.audit_log import verify_audit_log
from defiagent.protocols.erc20 import functions as erc20
from defiagent.signing.keystore import KeystoreSigner
from defiagent.signing.kms import KmsSigner
from defiagent.signing.remote.fixtures import market_contracts, write_signed_allowlist
from defiagent.signing.remote.server import AUDIT_FILE
from defiagent.signing.rotation import allowance, balance_of, granted_allowances
from defiagent.simulation.batch import BatchRpcClient
from tests.signing.conftest import REGION
from tests.signing.remote_support import (
    DEFIAGENT,
    PASSWORD_ENV,
    new_keystore,
    write_signer_config,
)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("rotation")]
OUTSIDER = Account.create().address


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
def allowlist(w3, market, tmp_path_factory):
    root = tmp_path_factory.mktemp("allowlist") / "allowlist"
    return write_signed_allowlist(w3, root, market.dex.chain_id, market_contracts(market))


def send(w3, signer, to, data):
    tx = {
        "type": 2,
        "chainId": w3.eth.chain_id,
        "nonce": w3.eth.get_transaction_count(signer.address),
        "to": to,
        "value": 0,
        "data": data,
        "gas": 100_000,
        "maxFeePerGas": 5 * 10**9,
        "maxPriorityFeePerGas": 10**9,
    }
    receipt = w3.eth.wait_for_transaction_receipt(
        w3.eth.send_raw_transaction(signer.sign_transaction(tx).raw)
    )
    assert receipt["status"] == 1


def give_old_key_a_history(w3, market, old) -> None:
    """Funds, an allowance to the router, and one to an outsider (a past compromise)."""
    d = market.dex
    fund(w3, market, old.address, eth=3 * UNIT, dusd=1_000 * UNIT, dtkn=2_000 * UNIT)
    send(w3, old, d.token_a, encode_call(erc20.APPROVE, [d.router, 500 * UNIT]))
    send(w3, old, d.token_b, encode_call(erc20.APPROVE, [OUTSIDER, 10**30]))
    send(w3, old, d.token_b, encode_call(erc20.APPROVE, [d.router, 0]))  # already 0: skipped


def rotate(config, *args, env=None) -> dict:
    done = subprocess.run(
        [DEFIAGENT, "signer", "rotate", "-c", str(config), *args, "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    return json.loads(done.stdout)


def assert_emptied(w3, market, old: str, new: str) -> None:
    d = market.dex
    rpc = BatchRpcClient(w3.provider.endpoint_uri)
    assert w3.eth.get_balance(old) == 0
    for token in (d.token_a, d.token_b, d.weth):
        assert balance_of(rpc, token, old) == 0
    for token, spender in granted_allowances(rpc, old, w3.eth.block_number):
        assert allowance(rpc, token, old, spender) == 0, (token, spender)
    assert balance_of(rpc, d.token_a, new) == 1_000 * UNIT
    assert balance_of(rpc, d.token_b, new) == 2_000 * UNIT
    assert w3.eth.get_balance(new) > 2 * UNIT


def test_rotating_a_keystore_leaves_nothing_behind(chain, w3, market, allowlist, tmp_path):
    old_path, password = new_keystore(tmp_path / "old.json")
    old = KeystoreSigner(old_path, password)
    give_old_key_a_history(w3, market, old)
    config, _sock, state = write_signer_config(
        tmp_path,
        rpc_url=chain.url,
        chain_id=market.dex.chain_id,
        allowlist_dir=allowlist,
        signer_table={"backend": "keystore", "path": str(old_path), "password_env": PASSWORD_ENV},
        prices={},
    )
    env = dict(os.environ) | {PASSWORD_ENV: password, "NEW_KEY_PASSWORD": "another-password-1"}
    report = rotate(
        config,
        "--new-keystore",
        str(tmp_path / "new.json"),
        "--password-env",
        "NEW_KEY_PASSWORD",
        env=env,
    )
    new = report["new"]
    assert report["old"] == old.address
    assert new == report["signer"]["address"]
    kinds = [s["kind"] for s in report["steps"]]
    assert kinds.count("revoke") == 2
    assert kinds.count("transfer") == 2
    assert kinds[-2:] == ["sweep-eth", "retire"]
    assert_emptied(w3, market, old.address, new)

    records = [json.loads(x) for x in (state / AUDIT_FILE).read_text().splitlines()]
    logged = [r["kind"] for r in records]
    assert logged[0] == "signer-rotate-start"
    assert logged[-1] == "signer-rotate-done"
    assert logged.count("signer-rotate-revoke") == 2
    assert verify_audit_log(state / AUDIT_FILE).ok

    # The old credential is refused from now on: the signer will not start with it...
    served = subprocess.run(
        [DEFIAGENT, "signer", "serve", "-c", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert served.returncode == 1
    assert "retired" in served.stderr
    # ...nor be rotated again.
    again = subprocess.run(
        [
            DEFIAGENT,
            "signer",
            "rotate",
            "-c",
            str(config),
            "--new-keystore",
            str(tmp_path / "n2.json"),
            "--password-env",
            "NEW_KEY_PASSWORD",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert again.returncode == 1, again.stderr


def test_rotating_a_kms_key_disables_the_old_one(chain, w3, market, allowlist, tmp_path, kms):
    old_id = kms.create_key()
    old = KmsSigner(old_id, REGION, endpoint_url=kms.endpoint_url)
    give_old_key_a_history(w3, market, old)
    config, _sock, _state = write_signer_config(
        tmp_path,
        rpc_url=chain.url,
        chain_id=market.dex.chain_id,
        allowlist_dir=allowlist,
        signer_table={
            "backend": "kms",
            "key_id": old_id,
            "region": REGION,
            "endpoint_url": kms.endpoint_url,
        },
        prices={},
    )
    report = rotate(config, "--create-kms-key", env=dict(os.environ))
    assert report["signer"]["key_id"] != old_id
    assert_emptied(w3, market, old.address, report["new"])
    # KMS itself refuses the old key from now on (moto records the state; AWS enforces it).
    state = (
        KmsSigner(old_id, REGION, endpoint_url=kms.endpoint_url)._kms().describe_key(KeyId=old_id)
    )
    assert state["KeyMetadata"]["KeyState"] == "Disabled"


def test_rotating_the_agent_key_of_a_safe_swaps_the_guards_agent(
    chain, w3, market, allowlist, tmp_path
):
    from defiagent.safe.chain import read_state
    from defiagent.safe.deploy import deploy_infra, deploy_safe

    old_path, password = new_keystore(tmp_path / "old.json")
    old = KeystoreSigner(old_path, password)
    fund(w3, market, old.address, eth=2 * UNIT)
    owner_paths = [new_keystore(tmp_path / f"owner{i}.json") for i in range(2)]
    owners = [KeystoreSigner(p, pw) for p, pw in owner_paths]
    infra = deploy_infra(w3, old)
    dep = deploy_safe(
        w3, old, owners=[o.address for o in owners], threshold=2, agent=old.address, infra=infra
    )
    config, _sock, state = write_signer_config(
        tmp_path,
        rpc_url=chain.url,
        chain_id=market.dex.chain_id,
        allowlist_dir=allowlist,
        signer_table={"backend": "keystore", "path": str(old_path), "password_env": PASSWORD_ENV},
        prices={},
        safe={"address": dep.safe, "guard": dep.guard, "multi_send": infra.multi_send},
    )
    env = dict(os.environ) | {
        PASSWORD_ENV: password,
        "NEW_KEY_PASSWORD": "another-password-2",
        "OWNER0": owner_paths[0][1],
        "OWNER1": owner_paths[1][1],
    }
    args = ["--new-keystore", str(tmp_path / "new.json"), "--password-env", "NEW_KEY_PASSWORD"]
    owner_args = ["--owner-key", str(owner_paths[0][0]), "--owner-password-env", "OWNER0"]
    # Under the Safe's threshold (1 of 2 owners) nothing moves: refused before any step.
    one = subprocess.run(
        [DEFIAGENT, "signer", "rotate", "-c", str(config), *args, *owner_args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert one.returncode == 1, one.stderr
    assert "needs 2 owner signatures" in one.stderr
    assert read_state(w3, dep.ref).agent == old.address
    assert w3.eth.get_balance(old.address) > 0
    assert not (tmp_path / "new.json").exists()
    owner_args += ["--owner-key", str(owner_paths[1][0]), "--owner-password-env", "OWNER1"]
    report = rotate(config, *args, *owner_args, env=env)
    assert read_state(w3, dep.ref).agent == report["new"]
    assert "safe-agent" in [s["kind"] for s in report["steps"]]
    assert report["safe"].startswith("the guard's agent swapped")
    assert w3.eth.get_balance(old.address) == 0
    assert verify_audit_log(state / AUDIT_FILE).ok
