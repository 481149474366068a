"""Proxy resolution on a real chain, for every layout defiagent knows."""

from __future__ import annotations

import pytest
from eth_utils import keccak
from web3 import Web3

from defiagent.allowlist.models import ProxyKind
from defiagent.allowlist.policy import Policy
from defiagent.chain.anvil import Anvil
from defiagent.vetting.bundle import bundle_from_path
from defiagent.vetting.onchain import ChainReader
from defiagent.vetting.proxy import resolve_proxy
from defiagent.vetting.vet import vet_address
from tests.allowlist.support import CONTRACTS, compiled, contract, deploy, transact

pytestmark = pytest.mark.slow


class World:
    pass


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with Anvil(log_dir=tmp_path_factory.mktemp("anvil")) as node:
        w3 = Web3(Web3.HTTPProvider(node.url))
        c = compiled("proxies/Proxies.sol")
        owner = w3.eth.accounts[0]
        box = contract(c, "BoxV1")
        init = box_init = None
        w = World()
        w.url, w.w3, w.owner = node.url, w3, owner
        w.impl = deploy(w3, box)
        init = w3.eth.contract(abi=box.abi).encode_abi("initialize", [owner])
        box_init = bytes.fromhex(init[2:])
        w.erc1967 = deploy(w3, contract(c, "ERC1967Proxy"), w.impl.address, box_init)
        w.transparent = deploy(
            w3, contract(c, "TransparentUpgradeableProxy"), w.impl.address, owner, box_init
        )
        w.beacon = deploy(w3, contract(c, "UpgradeableBeacon"), w.impl.address, owner)
        w.beacon_proxy = deploy(w3, contract(c, "BeaconProxy"), w.beacon.address, box_init)
        w.p1822 = deploy(w3, contract(c, "Proxy1822"), w.impl.address)
        w.zos = deploy(w3, contract(c, "ZosProxy"), w.impl.address, owner)
        w.safe = deploy(w3, contract(c, "SafeStyleProxy"), w.impl.address)
        maker = deploy(w3, contract(c, "CloneMaker"))
        receipt = transact(w3, maker.functions.make(w.impl.address))
        w.clone = maker.events.Cloned().process_receipt(receipt)[0]["args"]["clone"]
        receipt = transact(w3, maker.functions.make(w.erc1967.address))
        w.clone_of_proxy = maker.events.Cloned().process_receipt(receipt)[0]["args"]["clone"]
        forwarder = compiled("vulnerable/DelegatecallInput.sol")
        w.forwarder = deploy(w3, contract(forwarder, "Forwarder"))
        yield w


def _resolve(world, address):
    return resolve_proxy(ChainReader(world.url), address)


def _codehash(world, address):
    return "0x" + keccak(world.w3.eth.get_code(address)).hex()


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("erc1967", ProxyKind.EIP1967),
        ("transparent", ProxyKind.EIP1967),
        ("beacon_proxy", ProxyKind.EIP1967_BEACON),
        ("p1822", ProxyKind.EIP1822),
        ("zos", ProxyKind.OZ_LEGACY),
        ("safe", ProxyKind.SAFE),
        ("clone", ProxyKind.EIP1167),
    ],
)
def test_each_layout_resolves_to_the_implementation(world, name, kind):
    target = getattr(world, name)
    address = target if isinstance(target, str) else target.address
    p = _resolve(world, address)
    assert p.kind == kind
    assert not p.problems
    assert p.implementation == world.impl.address
    assert p.implementation_codehash == _codehash(world, world.impl.address)


def test_admins_and_beacons_are_read(world):
    transparent = _resolve(world, world.transparent.address)
    assert transparent.admin is not None
    assert world.w3.eth.get_code(transparent.admin)
    assert _resolve(world, world.zos.address).admin == world.owner
    assert _resolve(world, world.beacon_proxy.address).beacon == world.beacon.address
    assert _resolve(world, world.erc1967.address).admin is None


def test_a_proxy_behind_a_proxy_is_a_problem(world):
    p = _resolve(world, world.clone_of_proxy)
    assert p.kind == ProxyKind.EIP1167
    assert p.problems == [f"the implementation {world.erc1967.address} is itself a eip1967 proxy"]


def test_plain_code_that_delegates_is_flagged_not_resolved(world):
    p = _resolve(world, world.forwarder.address)
    assert not p.is_proxy
    assert p.delegates_elsewhere


def test_one_source_folder_verifies_proxy_and_implementation_immutables_aside(world):
    vetting = vet_address(
        world.url,
        world.erc1967.address,
        policy=Policy(),
        sources=bundle_from_path(CONTRACTS / "proxies" / "Proxies.sol"),
    )
    units = {u.label: u for u in vetting.report.units}
    assert units["proxy"].source_match.level == "full"
    assert units["proxy"].source_match.contract.endswith(":ERC1967Proxy")
    impl = units["implementation"].source_match  # BoxV1 holds UUPS's immutable __self
    assert impl.level == "full"
    assert impl.contract.endswith(":BoxV1")
    assert vetting.ctx.abi
    assert any(i.get("name") == "set" for i in vetting.ctx.abi)
    by_check = {o.check: o for o in vetting.report.outcomes if o.check == "proxy-resolved"}
    assert "eip1967 proxy to" in by_check["proxy-resolved"].reason
