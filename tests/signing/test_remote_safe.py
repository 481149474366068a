"""The signer process in front of a Safe: the key's only call is the Safe guard's
`execute`, and the signer judges what the Safe would run (each call of a MultiSend batch,
the batch's spend as a whole) with the guard's rules, the Safe as the recipient."""

from __future__ import annotations

import time

import pytest
from eth_account import Account
from web3 import Web3

from defiagent.agent.devnet import UNIT, deploy_market, fund
from defiagent.chain.anvil import Anvil
from defiagent.guard.calldata import encode_call
from defiagent.protocols.erc20 import functions as erc20
from defiagent.protocols.uniswap_v2 import functions as v2fn
from defiagent.safe.batch import execute_data
from defiagent.safe.multisend import encode_multisend
from defiagent.signing.remote.client import RemoteSigner, SignerRefused
from defiagent.signing.remote.fixtures import market_contracts, write_signed_allowlist
from defiagent.signing.rotation import balance_of
from defiagent.simulation.batch import BatchRpcClient
from tests.signing.remote_support import (
    PASSWORD_ENV,
    new_keystore,
    serve,
    write_signer_config,
)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("remote-safe")]
OUTSIDER = Account.create().address


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from defiagent.allowlist.store import load_active_allowlist
    from defiagent.safe import sync
    from defiagent.safe.deploy import deploy_infra, deploy_safe
    from defiagent.safe.runtime import wanted_config
    from defiagent.signing.keystore import KeystoreSigner

    folder = tmp_path_factory.mktemp("remote-safe")
    with Anvil(log_dir=folder / "chain") as node:
        w3 = Web3(Web3.HTTPProvider(node.url))
        market = deploy_market(w3)
        d = market.dex
        root = write_signed_allowlist(
            w3, folder / "allowlist", d.chain_id, market_contracts(market)
        )
        key, password = new_keystore(folder / "key.json")
        agent = KeystoreSigner(key, password)
        fund(w3, market, agent.address, eth=5 * UNIT)
        owners = [Account.create(), Account.create()]
        infra = deploy_infra(w3, agent)
        dep = deploy_safe(
            w3,
            agent,
            owners=[o.address for o in owners],
            threshold=2,
            agent=agent.address,
            infra=infra,
        )
        want = wanted_config(load_active_allowlist(root, d.chain_id), infra.multi_send)
        path = folder / "sync.json"
        sync.propose(w3, dep.ref, want, path)
        for owner in owners:
            sync.approve(w3, dep.ref, path, owner)
        sync.execute(w3, dep.ref, path, agent, want)
        fund(w3, market, dep.safe, eth=UNIT, dusd=20_000 * UNIT)
        config, sock, state = write_signer_config(
            folder,
            rpc_url=node.url,
            chain_id=d.chain_id,
            allowlist_dir=root,
            signer_table={"backend": "keystore", "path": str(key), "password_env": PASSWORD_ENV},
            prices={d.token_a: 1.0, d.token_b: 1.0},
            limits={"per_tx_value_cap": {"max_value": 2_000}},
            safe={"address": dep.safe, "guard": dep.guard, "multi_send": infra.multi_send},
        )
        with serve(config, sock, state, password) as running:
            client = RemoteSigner(running.socket, expected_address=agent.address)
            yield w3, market, dep, infra, client
            client.close()


def tx(w3, client, data, *, to):
    return {
        "type": 2,
        "chainId": w3.eth.chain_id,
        "nonce": w3.eth.get_transaction_count(client.address),
        "to": to,
        "value": 0,
        "data": data,
        "gas": 600_000,
        "maxFeePerGas": 5 * 10**9,
        "maxPriorityFeePerGas": 10**9,
        "accessList": [],
    }


def swap(market, amount, to):
    d = market.dex
    deadline = int(time.time()) + 600
    return encode_call(v2fn.SWAP_EXACT_IN, [amount, 1, [d.token_a, d.token_b], to, deadline])


def batch(infra, calls):
    return execute_data(infra.multi_send, 0, encode_multisend(calls), 1)


def test_an_approve_and_swap_batch_for_the_safe_is_signed_and_mined(setup):
    w3, market, dep, infra, client = setup
    d = market.dex
    data = batch(
        infra,
        [
            (d.token_a, 0, encode_call(erc20.APPROVE, [d.router, 500 * UNIT])),
            (d.router, 0, swap(market, 500 * UNIT, dep.safe)),
        ],
    )
    signed = client.sign_transaction(tx(w3, client, data, to=dep.guard))
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw))
    assert receipt["status"] == 1
    assert balance_of(BatchRpcClient(w3.provider.endpoint_uri), d.token_b, dep.safe) > 0


@pytest.mark.parametrize(
    ("what", "rule"),
    [
        ("a transfer out of the Safe", "function-in-scope"),
        ("a swap paying the key instead of the Safe", "recipient-is-self"),
        ("an unlimited approve inside a batch", "approval-bounded"),
        ("two swaps, each under the cap, over it together", "value-cap-per-tx"),
        ("a delegatecall into the router", "safe-call-shape"),
        ("a call straight to a token, around the guard", "safe-call-shape"),
    ],
)
def test_a_forged_safe_call_is_refused(setup, what, rule):
    w3, market, dep, infra, client = setup
    d = market.dex
    guard = dep.guard
    cases = {
        "a transfer out of the Safe": (
            execute_data(
                d.token_a, 0, encode_call("transfer(address,uint256)", [OUTSIDER, UNIT]), 0
            ),
            guard,
        ),
        "a swap paying the key instead of the Safe": (
            execute_data(d.router, 0, swap(market, UNIT, client.address), 0),
            guard,
        ),
        "an unlimited approve inside a batch": (
            batch(infra, [(d.token_a, 0, encode_call(erc20.APPROVE, [d.router, 2**256 - 1]))]),
            guard,
        ),
        "two swaps, each under the cap, over it together": (
            batch(
                infra,
                [
                    (d.router, 0, swap(market, 1_500 * UNIT, dep.safe)),
                    (d.router, 0, swap(market, 1_500 * UNIT, dep.safe)),
                ],
            ),
            guard,
        ),
        "a delegatecall into the router": (
            execute_data(d.router, 0, swap(market, UNIT, dep.safe), 1),
            guard,
        ),
        "a call straight to a token, around the guard": (
            encode_call(erc20.APPROVE, [d.router, UNIT]),
            d.token_a,
        ),
    }
    data, to = cases[what]
    with pytest.raises(SignerRefused) as info:
        client.sign_transaction(tx(w3, client, data, to=to))
    assert info.value.rule == rule, info.value.reason
