"""A module-wide upstream chain with Uniswap V2 deployed, an agent, and a fork of it."""

from __future__ import annotations

import pytest
from eth_account import Account
from web3 import Web3

from defiagent.allowlist.models import ActiveAllowlist, AllowlistEntry, Role
from defiagent.chain.anvil import Anvil
from defiagent.devchain.deploy import create_pool, deploy_uniswap_v2
from defiagent.simulation import ForkManager, Simulator
from tests.simulation.helpers import fund

AGENT_TOKENS = 10**21


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    with Anvil(log_dir=tmp_path_factory.mktemp("upstream")) as node:
        yield node


@pytest.fixture(scope="module")
def up_w3(upstream) -> Web3:
    return Web3(Web3.HTTPProvider(upstream.url))


@pytest.fixture(scope="module")
def dex(up_w3):
    return create_pool(up_w3, deploy_uniswap_v2(up_w3), 10**24, 2 * 10**24)


@pytest.fixture(scope="module")
def agent(up_w3, dex) -> str:
    """A fresh address (no key needed to simulate) holding ETH and token_a."""
    address = Account.create().address
    fund(up_w3, dex, address, token_a=AGENT_TOKENS)
    return address


@pytest.fixture(scope="module")
def fork(upstream, dex, agent, tmp_path_factory):
    with ForkManager(upstream.url, log_dir=tmp_path_factory.mktemp("fork")) as manager:
        yield manager


@pytest.fixture
def sim(fork) -> Simulator:
    return Simulator(fork)


def entry(
    address: str, name: str, role: Role, codehash: str = "0x" + "00" * 32, **extra
) -> AllowlistEntry:
    return AllowlistEntry(
        chain_id=31337, address=address, name=name, role=role, codehash=codehash, **extra
    )


@pytest.fixture(scope="module")
def allowlist(up_w3, dex) -> ActiveAllowlist:
    """Router, both tokens and WETH, each pinned to its code on the upstream; the pair is
    allowed as a callee of the router."""

    def pin(address: str) -> str:
        return up_w3.keccak(up_w3.eth.get_code(address)).to_0x_hex()

    entries = [
        entry(
            dex.router,
            "UniswapV2Router02",
            Role.ROUTER,
            codehash=pin(dex.router),
            allowed_callees=[dex.pair],
        ),
        entry(dex.token_a, "Demo USD", Role.TOKEN, codehash=pin(dex.token_a)),
        entry(dex.token_b, "Demo Token", Role.TOKEN, codehash=pin(dex.token_b)),
        entry(dex.weth, "WETH9", Role.WRAPPED_NATIVE, codehash=pin(dex.weth)),
    ]
    return ActiveAllowlist(chain_id=31337, entries={e.address: e for e in entries})
