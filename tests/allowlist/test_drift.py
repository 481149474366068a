"""What changes on chain after approval makes `verify` fail, with the reason."""

from __future__ import annotations

import pytest
from eth_utils import keccak
from web3 import Web3

from defiagent.allowlist.models import ProxyInfo
from defiagent.allowlist.verify import verify_allowlist
from defiagent.chain.anvil import Anvil
from defiagent.errors import InfraError
from defiagent.vetting.onchain import ChainReader
from defiagent.vetting.proxy import EIP1967_ADMIN, resolve_proxy
from tests.allowlist.support import approved_entry, compiled, contract, deploy, transact

pytestmark = pytest.mark.slow


def _codehash(w3, address) -> str:
    return "0x" + keccak(w3.eth.get_code(address)).hex()


def _failures(report):
    return [o.reason for e in report.entries for o in e.outcomes if o.status == "fail"]


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
def boxes(w3):
    c = compiled("proxies/Proxies.sol")
    owner = w3.eth.accounts[0]
    v1, v2 = deploy(w3, contract(c, "BoxV1")), deploy(w3, contract(c, "BoxV2"))
    init = bytes.fromhex(w3.eth.contract(abi=v1.abi).encode_abi("initialize", [owner])[2:])
    return c, owner, v1, v2, init


def test_uups_proxy_upgraded_after_approval(anvil, w3, root, keys, boxes):
    c, owner, v1, v2, init = boxes
    proxy = deploy(w3, contract(c, "ERC1967Proxy"), v1.address, init)
    approved_entry(
        root,
        keys,
        chain_id=w3.eth.chain_id,
        address=proxy.address,
        codehash=_codehash(w3, proxy.address),
        proxy=_pin_proxy(anvil.url, proxy.address),
    )
    assert verify_allowlist(root, anvil.url).passed
    box = w3.eth.contract(address=proxy.address, abi=v1.abi)
    transact(w3, box.functions.upgradeToAndCall(v2.address, b""), owner)
    report = verify_allowlist(root, anvil.url)
    assert not report.passed
    reasons = _failures(report)
    assert f"the proxy's implementation is now {v2.address}, not the pinned {v1.address}" in reasons
    assert any(r.startswith("the proxy's implementation codehash is now") for r in reasons)


def test_beacon_upgraded_after_approval(anvil, w3, root, keys, boxes):
    c, owner, v1, v2, init = boxes
    beacon = deploy(w3, contract(c, "UpgradeableBeacon"), v1.address, owner)
    proxy = deploy(w3, contract(c, "BeaconProxy"), beacon.address, init)
    approved_entry(
        root,
        keys,
        chain_id=w3.eth.chain_id,
        address=proxy.address,
        codehash=_codehash(w3, proxy.address),
        proxy=_pin_proxy(anvil.url, proxy.address),
    )
    assert verify_allowlist(root, anvil.url).passed
    transact(w3, beacon.functions.upgradeTo(v2.address), owner)
    reasons = _failures(verify_allowlist(root, anvil.url))
    assert f"the proxy's implementation is now {v2.address}, not the pinned {v1.address}" in reasons


def test_proxy_admin_changed_after_approval(anvil, w3, root, keys, boxes):
    c, owner, v1, _, init = boxes
    proxy = deploy(w3, contract(c, "TransparentUpgradeableProxy"), v1.address, owner, init)
    pinned = _pin_proxy(anvil.url, proxy.address)
    approved_entry(
        root,
        keys,
        chain_id=w3.eth.chain_id,
        address=proxy.address,
        codehash=_codehash(w3, proxy.address),
        proxy=pinned,
    )
    # Stand-in for an admin handover (OZ 5's transparent proxy fixes its admin at deploy).
    new_admin = keys.outsider.address
    w3.provider.make_request(
        "anvil_setStorageAt",
        [proxy.address, hex(EIP1967_ADMIN), "0x" + new_admin[2:].lower().rjust(64, "0")],
    )
    reasons = _failures(verify_allowlist(root, anvil.url))
    assert f"the proxy's admin is now {new_admin}, not the pinned {pinned.admin}" in reasons


def test_code_replaced_with_anvil_set_code(anvil, w3, root, keys):
    # Cancun (anvil's default hardfork) forbids the SELFDESTRUCT redeploy (EIP-6780), so the
    # swap is made with anvil_setCode: the check does not care how the code changed.
    c = compiled("vulnerable/SelfdestructAnyone.sol")
    target = deploy(w3, contract(c, "Killable"))
    original = _codehash(w3, target.address)
    approved_entry(root, keys, chain_id=w3.eth.chain_id, address=target.address, codehash=original)
    transact(w3, target.functions.kill())
    assert w3.eth.get_code(target.address), "EIP-6780: the code survives SELFDESTRUCT"
    assert verify_allowlist(root, anvil.url).passed
    w3.provider.make_request("anvil_setCode", [target.address, "0x6001600055"])
    reasons = _failures(verify_allowlist(root, anvil.url))
    assert any(
        r.startswith(f"the code at {target.address} has codehash 0x") and original in r
        for r in reasons
    )


def test_metamorphic_create2_redeploy_at_the_same_address(tmp_path, root, keys):
    # Before Cancun, SELFDESTRUCT plus a CREATE2 factory with a fixed init code puts other
    # code at an approved address. Shanghai rules on anvil make that real here.
    c = compiled("metamorphic/Metamorphic.sol", evm_version="shanghai")
    with Anvil(log_dir=tmp_path / "anvil", extra_args=("--hardfork", "shanghai")) as node:
        w3 = Web3(Web3.HTTPProvider(node.url))
        factory = deploy(w3, contract(c, "MetamorphicFactory"))
        salt = b"\x42" * 32
        innocent = bytes.fromhex(contract(c, "InnocentV1").runtime)
        swapped = bytes.fromhex(contract(c, "SwappedV2").runtime)
        receipt = transact(w3, factory.functions.deploy(salt, innocent))
        at = factory.events.Deployed().process_receipt(receipt)[0]["args"]["at"]
        pinned = _codehash(w3, at)
        approved_entry(root, keys, chain_id=w3.eth.chain_id, address=at, codehash=pinned)
        assert verify_allowlist(root, node.url).passed

        morph = w3.eth.contract(address=at, abi=contract(c, "InnocentV1").abi)
        transact(w3, morph.functions.retire())
        gone = _failures(verify_allowlist(root, node.url))
        assert f"there is no code at {at} (block {w3.eth.block_number})" in gone

        receipt = transact(w3, factory.functions.deploy(salt, swapped))
        assert factory.events.Deployed().process_receipt(receipt)[0]["args"]["at"] == at
        assert _codehash(w3, at) != pinned
        reasons = _failures(verify_allowlist(root, node.url))
        assert any(
            f"has codehash {_codehash(w3, at)}, not the pinned {pinned}" in r for r in reasons
        )


def test_unreachable_rpc_is_an_infrastructure_error(root):
    with pytest.raises(InfraError):
        verify_allowlist(root, "http://127.0.0.1:9")
