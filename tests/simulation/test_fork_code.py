"""The code that was simulated is the code that was pinned.

A fork source (the `fork_url` the simulator forks from) that serves other code than the
chain the agent reads must not get a transaction signed: the main RPC's codehashes are
honest, so only the code hashes read on the fork itself show the difference.
"""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_utils import keccak
from web3 import Web3

from defiagent.agent.devnet import UNIT, deploy_market, fund
from defiagent.agent.observe import EIP1967_IMPLEMENTATION, observe_code
from defiagent.allowlist.models import (
    ActiveAllowlist,
    AllowlistEntry,
    ProxyInfo,
    ProxyKind,
    Role,
)
from defiagent.chain.anvil import Anvil
from defiagent.execution.models import PlannedCall
from defiagent.guard.base import GuardContext
from defiagent.guard.touched import TouchedCodePinned
from defiagent.simulation import ForkManager, Simulator
from defiagent.simulation.batch import BatchRpcClient
from defiagent.simulation.checks import CheckContext, run_checks
from defiagent.simulation.models import SimulationOutcome
from tests.allowlist.support import compiled, contract, deploy
from tests.simulation.helpers import approve_call, swap_call

pytestmark = pytest.mark.slow


def _codehash(w3: Web3, address: str) -> str:
    return "0x" + keccak(w3.eth.get_code(address)).hex()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """An honest upstream with the demo market, a Box behind an ERC-1967 proxy, a funded
    agent, and the allowlist pinning all of it."""
    with Anvil(log_dir=tmp_path_factory.mktemp("honest")) as honest:
        w3 = Web3(Web3.HTTPProvider(honest.url))
        market = deploy_market(w3)
        agent = Account.create().address
        fund(w3, market, agent, eth=10 * UNIT, dusd=10_000 * UNIT)
        c = compiled("proxies/Proxies.sol")
        v1, v2 = deploy(w3, contract(c, "BoxV1")), deploy(w3, contract(c, "BoxV2"))
        init = bytes.fromhex(
            w3.eth.contract(abi=v1.abi).encode_abi("initialize", [w3.eth.accounts[0]])[2:]
        )
        proxy = deploy(w3, contract(c, "ERC1967Proxy"), v1.address, init)
        d = market.dex

        def entry(address, name, role, **extra):
            return AllowlistEntry(
                chain_id=d.chain_id,
                address=address,
                name=name,
                role=role,
                codehash=_codehash(w3, address),
                **extra,
            )

        entries = [
            entry(d.router, "UniswapV2Router02", Role.ROUTER),
            entry(d.weth, "WETH9", Role.WRAPPED_NATIVE),
            entry(d.token_a, "Demo USD", Role.TOKEN),
            entry(d.token_b, "Demo Token", Role.TOKEN),
            entry(d.pair, "UniswapV2Pair DUSD/DTKN", Role.POOL),
            entry(
                proxy.address,
                "Box",
                Role.OTHER,
                proxy=ProxyInfo(
                    kind=ProxyKind.EIP1967,
                    implementation=v1.address,
                    implementation_codehash=_codehash(w3, v1.address),
                ),
            ),
        ]
        allowlist = ActiveAllowlist(chain_id=d.chain_id, entries={e.address: e for e in entries})
        yield {
            "url": honest.url,
            "w3": w3,
            "market": market,
            "agent": agent,
            "allowlist": allowlist,
            "box": w3.eth.contract(address=proxy.address, abi=v1.abi),
            "v1": v1.address,
            "v2": v2.address,
        }


def _tampered_source(world, tmp_path, *, code: dict[str, str] = (), slots=()):
    """A second anvil forked from the honest one, serving other code (anvil_setCode) or
    other storage: the fork source a compromised RPC provider would be."""
    node = Anvil(fork_url=world["url"], log_dir=tmp_path / "tampered").start()
    w3 = Web3(Web3.HTTPProvider(node.url))
    for address, new_code in dict(code).items():
        w3.provider.make_request("anvil_setCode", [address, new_code])
    for address, slot, value in slots:
        w3.provider.make_request("anvil_setStorageAt", [address, slot, value])
    w3.provider.make_request("evm_mine", [])
    return node


def _honest_guard_context(world) -> GuardContext:
    """What the guard sees: codehashes read from the honest main RPC."""
    allowlist, w3 = world["allowlist"], world["w3"]
    rpc = BatchRpcClient(world["url"])
    try:
        codehashes, implementations = observe_code(rpc, allowlist, w3.eth.block_number)
    finally:
        rpc.close()
    return GuardContext(
        agent=world["agent"],
        chain_id=allowlist.chain_id,
        allowlist=allowlist,
        now=0,
        codehashes=codehashes,
        implementations=implementations,
    )


def _swap_plan(world):
    d, agent = world["market"].dex, world["agent"]
    approve = approve_call(d.token_a, d.router, UNIT, agent)
    swap = swap_call(d, d.token_a, d.token_b, UNIT, 0, agent)
    return approve, swap


def _simulate(url, tmp_path, calls):
    with ForkManager(url, log_dir=tmp_path / "fork") as fork:
        return Simulator(fork).simulate(calls[-1], prior_calls=calls[:-1])


def test_router_served_with_one_more_byte_by_the_fork_source_is_refused(world, tmp_path):
    router = world["market"].dex.router
    original = world["w3"].eth.get_code(router).to_0x_hex()
    source = _tampered_source(world, tmp_path, code={router: original + "00"})
    try:
        approve, swap = _swap_plan(world)
        outcome = _simulate(source.url, tmp_path, [approve, swap])
    finally:
        source.stop()
    assert outcome.success, outcome.revert_reason  # one more byte changes nothing it does...

    # ...and the main RPC is honest, so the guard's code pins hold:
    assert TouchedCodePinned().check(list(outcome.touched), _honest_guard_context(world)).allowed

    decision = run_checks(swap, outcome, CheckContext(allowlist=world["allowlist"]))
    assert not decision.allowed
    assert [v.rule for v in decision.refusals] == ["fork-code-pinned"]
    reason = decision.reason()
    assert f"UniswapV2Router02 ({router})" in reason
    assert "not the pinned" in reason


def test_honest_fork_source_passes(world, tmp_path):
    approve, swap = _swap_plan(world)
    outcome = _simulate(world["url"], tmp_path, [approve, swap])
    d = world["market"].dex
    assert set(outcome.fork_codehashes) >= {d.router, d.pair, d.token_a, d.token_b}
    pins = world["allowlist"].entries
    assert outcome.fork_codehashes[d.router] == pins[d.router].codehash
    decision = run_checks(swap, outcome, CheckContext(allowlist=world["allowlist"]))
    assert decision.allowed, decision.reason()


def _box_set(world) -> PlannedCall:
    box = world["box"]
    return PlannedCall(
        intent_id="box",
        intent_kind="raw-call",
        target=box.address,
        data=box.encode_abi("set", [7]),
        sender=world["agent"],
        description="set the box's value",
    )


def test_proxy_pointed_elsewhere_by_the_fork_source_is_refused(world, tmp_path):
    box, v1, v2 = world["box"].address, world["v1"], world["v2"]
    word = "0x" + v2[2:].lower().rjust(64, "0")
    source = _tampered_source(world, tmp_path, slots=[(box, EIP1967_IMPLEMENTATION, word)])
    try:
        call = _box_set(world)
        outcome = _simulate(source.url, tmp_path, [call])
    finally:
        source.stop()
    assert outcome.success, outcome.revert_reason
    assert TouchedCodePinned().check(list(outcome.touched), _honest_guard_context(world)).allowed
    decision = run_checks(call, outcome, CheckContext(allowlist=world["allowlist"]))
    refusal = next(v for v in decision.refusals if v.rule == "fork-code-pinned")
    assert f"runs {v2}" in refusal.reason
    assert f"pinned implementation {v1}" in refusal.reason


def test_implementation_served_with_other_code_is_refused(world, tmp_path):
    v1 = world["v1"]
    original = world["w3"].eth.get_code(v1).to_0x_hex()
    source = _tampered_source(world, tmp_path, code={v1: original + "00"})
    try:
        call = _box_set(world)
        outcome = _simulate(source.url, tmp_path, [call])
    finally:
        source.stop()
    assert outcome.success, outcome.revert_reason
    decision = run_checks(call, outcome, CheckContext(allowlist=world["allowlist"]))
    refusal = next(v for v in decision.refusals if v.rule == "fork-code-pinned")
    assert f"implementation {v1}" in refusal.reason
    assert "Box" in refusal.reason


def test_an_outcome_without_the_fork_code_is_refused(world):
    """Fail closed: an outcome that does not say what code ran cannot be shown to be pinned."""
    d = world["market"].dex
    outcome = SimulationOutcome(success=True, gas_used=1, block_number=1, touched=[d.router])
    decision = run_checks(_swap_plan(world)[1], outcome, CheckContext(allowlist=world["allowlist"]))
    refusal = next(v for v in decision.refusals if v.rule == "fork-code-pinned")
    assert "did not read the code it ran on the fork" in refusal.reason
