"""A local market with the real Uniswap V2 stack, a funded agent with a throwaway keystore,
and a way to start the agent runtime on it with any strategies."""

from __future__ import annotations

import contextlib
import secrets

import pytest
from eth_account import Account
from web3 import Web3

from defiagent.agent import scopes
from defiagent.agent.demo import demo_config
from defiagent.agent.devnet import UNIT, deploy_market, fund
from defiagent.agent.observe import codehash
from defiagent.agent.runtime import AgentRuntime
from defiagent.allowlist.models import ActiveAllowlist, AllowlistEntry, Role
from defiagent.chain.anvil import Anvil
from defiagent.config import parse_config
from defiagent.signing.keystore import KeystoreSigner, write_keystore


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    with Anvil(log_dir=tmp_path_factory.mktemp("chain")) as node:
        yield node


@pytest.fixture(scope="module")
def cw3(chain) -> Web3:
    return Web3(Web3.HTTPProvider(chain.url))


@pytest.fixture(scope="module")
def market(cw3):
    return deploy_market(cw3)


@pytest.fixture(scope="module")
def signer(cw3, market, tmp_path_factory):
    path = tmp_path_factory.mktemp("key") / "agent.json"
    password = secrets.token_urlsafe(16)
    write_keystore(path, bytes(Account.create().key), password, light=True)
    s = KeystoreSigner(path, password)
    fund(cw3, market, s.address, eth=10 * UNIT, dusd=50_000 * UNIT, dtkn=100_000 * UNIT)
    return s


@pytest.fixture(scope="module")
def allowlist(cw3, market):
    """The entries the vetting workflow produces for this market (it is run for real by the
    demo test and tests/allowlist; here only its result matters, without minutes of Slither)."""
    d = market.dex

    def entry(address, name, role, functions):
        code = cw3.eth.get_code(address).to_0x_hex()
        return AllowlistEntry(
            chain_id=d.chain_id,
            address=address,
            name=name,
            role=role,
            codehash=codehash(code),
            functions=functions,
        )

    entries = [
        entry(d.router, "UniswapV2Router02", Role.ROUTER, scopes.router_functions()),
        entry(d.factory, "UniswapV2Factory", Role.FACTORY, []),
        entry(d.weth, "WETH9", Role.WRAPPED_NATIVE, scopes.weth_functions()),
        entry(d.token_a, "Demo USD (DUSD)", Role.TOKEN, scopes.token_functions()),
        entry(d.token_b, "Demo Token (DTKN)", Role.TOKEN, scopes.token_functions()),
        entry(d.pair, "UniswapV2Pair DUSD/DTKN", Role.POOL, scopes.pair_functions()),
        entry(market.weth_pair, "UniswapV2Pair WETH/DUSD", Role.POOL, scopes.pair_functions()),
    ]
    return ActiveAllowlist(chain_id=d.chain_id, entries={e.address: e for e in entries})


@pytest.fixture
def start_agent(chain, cw3, market, signer, allowlist, tmp_path):
    """start_agent(strategies, **config_overrides) -> runtime (warmed up, stopped at teardown).

    Each test starts from the same chain state: the TWAP reference reads the pool's history
    from the chain, so a price one test moved would otherwise be another test's history."""
    stack = contextlib.ExitStack()
    snapshot = cw3.provider.make_request("evm_snapshot", [])["result"]

    def start(strategies, *, allowlist_override=None, configure=None, use_signer=None, **overrides):
        table = {"backend": "keystore", "path": str(signer.path), "password_env": "UNUSED"}
        cfg = demo_config(market, rpc_url=chain.url, workdir=tmp_path, signer_table=table)
        if overrides:
            cfg = cfg.model_copy(update=overrides)
        if configure is not None:  # nested changes: configure(raw dict) -> raw dict
            cfg = parse_config(configure(cfg.model_dump(mode="json")))
        runtime = stack.enter_context(
            AgentRuntime(
                cfg,
                signer=use_signer or signer,
                allowlist=allowlist_override or allowlist,
                strategies=strategies,
                mode="test",
            )
        )
        # Move the chain's clock so the TWAP reference has a window, as the demo does.
        runtime.agent.warm_up()
        cw3.provider.make_request("evm_increaseTime", [15])
        cw3.provider.make_request("evm_mine", [])
        return runtime

    yield start
    stack.close()
    cw3.provider.make_request("evm_revert", [snapshot])


class Scripted:
    """A strategy that proposes the given intents on its first tick, then nothing."""

    name = "scripted"

    def __init__(self, *intents):
        self.intents = list(intents)

    def describe(self) -> str:
        return "scripted (test)"

    def propose(self, market, portfolio):
        out, self.intents = self.intents, []
        return out
