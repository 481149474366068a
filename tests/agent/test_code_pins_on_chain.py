"""What the allowlist pins holds on chain at start, every tick, and right before signing.

Needs the agent runtime's start check (`verify_on_chain`), the loop's drift review with the
proxies' implementations, and the loop's re-read of the code right before signing.
"""

from __future__ import annotations

import json

import pytest
from eth_utils import keccak

from defiagent.agent.devnet import UNIT
from defiagent.allowlist.models import ProxyInfo, ProxyKind, Role
from defiagent.errors import Refused
from defiagent.monitoring.auto_kill import AutoKillConfig
from tests.agent.conftest import Scripted
from tests.agent.test_agent_on_chain import Honest
from tests.allowlist.support import compiled, contract, deploy, transact

pytestmark = pytest.mark.slow


def _codehash(w3, address) -> str:
    return "0x" + keccak(w3.eth.get_code(address)).hex()


@pytest.fixture
def box(cw3, allowlist):
    """A UUPS proxy to BoxV1 pinned in the allowlist, and a function upgrading it to V2."""
    c = compiled("proxies/Proxies.sol")
    owner = cw3.eth.accounts[0]
    v1, v2 = deploy(cw3, contract(c, "BoxV1")), deploy(cw3, contract(c, "BoxV2"))
    init = bytes.fromhex(cw3.eth.contract(abi=v1.abi).encode_abi("initialize", [owner])[2:])
    proxy = deploy(cw3, contract(c, "ERC1967Proxy"), v1.address, init)
    entry = next(iter(allowlist.entries.values())).model_copy(
        update={
            "address": proxy.address,
            "name": "Box behind a UUPS proxy",
            "role": Role.OTHER,
            "codehash": _codehash(cw3, proxy.address),
            "functions": [],
            "proxy": ProxyInfo(
                kind=ProxyKind.EIP1967,
                implementation=v1.address,
                implementation_codehash=_codehash(cw3, v1.address),
            ),
        }
    )
    pinned = allowlist.model_copy(update={"entries": {**allowlist.entries, entry.address: entry}})
    handle = cw3.eth.contract(address=proxy.address, abi=v1.abi)

    def upgrade() -> None:
        transact(cw3, handle.functions.upgradeToAndCall(v2.address, b""), owner)

    return pinned, entry, v1.address, v2.address, upgrade


def test_start_refuses_a_proxy_upgraded_after_approval(start_agent, box):
    pinned, entry, v1, v2, upgrade = box
    upgrade()
    with pytest.raises(Refused) as refused:
        start_agent([Scripted()], allowlist_override=pinned)
    message = str(refused.value)
    assert entry.name in message
    assert entry.address in message
    assert f"the proxy's implementation is now {v2}, not the pinned {v1}" in message


def test_upgrade_while_running_trips_the_kill_switch(start_agent, box):
    pinned, entry, *_, upgrade = box
    runtime = start_agent([Scripted()], allowlist_override=pinned)
    assert runtime.agent.tick().skipped is None
    upgrade()
    runtime.agent.tick()
    status = runtime.kill_switch.status()
    assert status.on
    assert status.changed_by == "auto-kill"
    assert "allowlist-verification" in status.reason
    assert entry.name in status.reason
    records = [json.loads(line) for line in runtime.audit_path.read_text().splitlines()]
    snapshots = [r["payload"] for r in records if r["kind"] == "snapshot"]
    assert entry.name in snapshots[-1]["drifted"]


def test_code_changed_after_simulation_is_refused_before_signing(start_agent, cw3, market, signer):
    """The code is read again at the latest block right before signing: a token whose code
    changes between the simulation and the signature is refused, and nothing is sent."""
    token = market.dtkn
    original = cw3.eth.get_code(token).to_0x_hex()
    runtime = start_agent(
        [Honest(market, amount=100 * UNIT)], auto_kill=AutoKillConfig(on_allowlist_failure=False)
    )
    simulator = runtime.agent.p.simulator
    real = simulator.simulate_sequence

    def simulate_then_swap_code(calls):
        outcomes = real(calls)
        cw3.provider.make_request("anvil_setCode", [token, original + "00"])
        return outcomes

    simulator.simulate_sequence = simulate_then_swap_code
    before = cw3.eth.get_transaction_count(signer.address)
    try:
        report = runtime.agent.tick()
    finally:
        cw3.provider.make_request("anvil_setCode", [token, original])
    (intent,) = report.intents
    assert intent.status == "refused", intent
    assert intent.stage == "execution"
    assert [r.rule for r in intent.refusals] == ["codehash-pinned"]
    assert "right before signing" in intent.refusals[0].reason
    assert cw3.eth.get_transaction_count(signer.address) == before
