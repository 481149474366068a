"""The pins hold on chain at start and while running: an upgraded proxy is drift.

Signatures are checked offline (`load_allowlist`); what the entries pin is checked on chain
at start (`verify_on_chain`) and at every tick (`observe_code` + `drifted_entries`, which
trips the automatic kill switch).
"""

from __future__ import annotations

import pytest
from eth_utils import keccak

from defiagent.agent.allowlist_source import load_allowlist
from defiagent.agent.observe import drifted_entries, observe_code
from defiagent.allowlist.models import ProxyInfo
from defiagent.errors import Refused
from defiagent.monitoring.auto_kill import AutoKill
from defiagent.monitoring.interfaces import NullAuditSink
from defiagent.monitoring.kill_switch import KillSwitch
from defiagent.simulation.batch import BatchRpcClient
from defiagent.vetting.onchain import ChainReader
from defiagent.vetting.proxy import resolve_proxy
from tests.allowlist.support import approved_entry, compiled, contract, deploy, transact

pytestmark = pytest.mark.slow

NAME = "Box (UUPS proxy)"


def _codehash(w3, address) -> str:
    return "0x" + keccak(w3.eth.get_code(address)).hex()


def _pin_proxy(url, address) -> ProxyInfo:
    p = resolve_proxy(ChainReader(url), address)
    return ProxyInfo(
        kind=p.kind,
        admin=p.admin,
        beacon=p.beacon,
        implementation=p.implementation,
        implementation_codehash=p.implementation_codehash,
    )


@pytest.fixture
def rpc(anvil):
    client = BatchRpcClient(anvil.url)
    yield client
    client.close()


@pytest.fixture
def boxes(w3):
    c = compiled("proxies/Proxies.sol")
    owner = w3.eth.accounts[0]
    v1, v2 = deploy(w3, contract(c, "BoxV1")), deploy(w3, contract(c, "BoxV2"))
    init = bytes.fromhex(w3.eth.contract(abi=v1.abi).encode_abi("initialize", [owner])[2:])
    return c, owner, v1, v2, init


@pytest.fixture
def uups(anvil, w3, root, keys, boxes):
    """An approved UUPS proxy to BoxV1, and a function that upgrades it to BoxV2."""
    c, owner, v1, v2, init = boxes
    proxy = deploy(w3, contract(c, "ERC1967Proxy"), v1.address, init)
    approved_entry(
        root,
        keys,
        chain_id=w3.eth.chain_id,
        address=proxy.address,
        codehash=_codehash(w3, proxy.address),
        proxy=_pin_proxy(anvil.url, proxy.address),
        name=NAME,
    )
    box = w3.eth.contract(address=proxy.address, abi=v1.abi)

    def upgrade() -> None:
        transact(w3, box.functions.upgradeToAndCall(v2.address, b""), owner)

    return proxy.address, v1.address, v2.address, upgrade


def test_start_refuses_a_proxy_upgraded_after_approval(w3, root, rpc, uups):
    from defiagent.agent.allowlist_source import verify_on_chain

    proxy, v1, v2, upgrade = uups
    allowlist = load_allowlist(root, w3.eth.chain_id)
    verify_on_chain(allowlist, rpc)  # as approved: starts

    upgrade()
    # The reviewers' signatures still hold: offline, nothing changed...
    allowlist = load_allowlist(root, w3.eth.chain_id)
    # ...on chain, the proxy runs other code, so the agent must not start.
    with pytest.raises(Refused) as refused:
        verify_on_chain(allowlist, rpc)
    message = str(refused.value)
    assert NAME in message
    assert proxy in message
    assert f"the proxy's implementation is now {v2}, not the pinned {v1}" in message
    assert message.count(". ") == 0, "one sentence"


def test_start_refuses_code_replaced_after_approval(anvil, w3, root, keys, rpc):
    from defiagent.agent.allowlist_source import verify_on_chain

    c = compiled("vulnerable/SelfdestructAnyone.sol")
    target = deploy(w3, contract(c, "Killable"))
    pinned = _codehash(w3, target.address)
    approved_entry(
        root, keys, chain_id=w3.eth.chain_id, address=target.address, codehash=pinned, name="K"
    )
    allowlist = load_allowlist(root, w3.eth.chain_id)
    verify_on_chain(allowlist, rpc)
    w3.provider.make_request("anvil_setCode", [target.address, "0x6001600055"])
    with pytest.raises(Refused) as refused:
        verify_on_chain(allowlist, rpc)
    assert f"K ({target.address})" in str(refused.value)
    assert f"not the pinned {pinned}" in str(refused.value)


def test_start_refuses_an_rpc_of_another_chain(w3, root, rpc, uups):
    from defiagent.agent.allowlist_source import verify_on_chain

    allowlist = load_allowlist(root, w3.eth.chain_id)
    relabelled = allowlist.model_copy(update={"chain_id": 1})
    with pytest.raises(Refused, match=r"chain 1.*chain 31337|chain 31337.*chain 1"):
        verify_on_chain(relabelled, rpc)


def test_upgrade_while_running_is_drift_and_trips_the_kill_switch(w3, root, rpc, uups, tmp_path):
    _proxy, _, _, upgrade = uups
    allowlist = load_allowlist(root, w3.eth.chain_id)
    codehashes, implementations = observe_code(rpc, allowlist, w3.eth.block_number)
    assert drifted_entries(allowlist, codehashes, implementations) == []

    upgrade()
    codehashes, implementations = observe_code(rpc, allowlist, w3.eth.block_number)
    # The proxy's own code did not change: comparing codehashes alone sees nothing.
    assert drifted_entries(allowlist, codehashes) == []
    drifted = drifted_entries(allowlist, codehashes, implementations)
    assert drifted == [NAME]

    kill_switch = KillSwitch(tmp_path / "state")
    auto_kill = AutoKill(kill_switch, audit=NullAuditSink())
    assert auto_kill.allowlist_failure(f"the code of {', '.join(drifted)} no longer matches")
    status = kill_switch.status()
    assert status.on
    assert status.changed_by == "auto-kill"
    assert NAME in status.reason


def test_a_proxy_whose_implementation_cannot_be_read_is_drift(w3, root, rpc, uups):
    _proxy, *_ = uups
    allowlist = load_allowlist(root, w3.eth.chain_id)
    codehashes, _ = observe_code(rpc, allowlist, w3.eth.block_number)
    assert drifted_entries(allowlist, codehashes, {}) == [NAME]
