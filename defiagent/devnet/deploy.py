"""What `devnet up` puts on the chain, through the protocol registry.

First the devnet's two tokens (OpenZeppelin ERC-20s, Demo USD and Demo Token), which every
DEX and vault pools; then each registered protocol's `deploy_devnet`, in registry order
(WETH before the DEXes that need it), each seeing what the ones before it deployed; then
the Uniswap V2 market the demo trades on (DUSD/DTKN and WETH/DUSD pairs). Every contract a
deployment names is reviewed into the allowlist with its protocol's scope; each protocol's
settings go into agent.toml.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from web3 import Web3

from defiagent.agent.demo_allowlist import Contract, scoped
from defiagent.agent.devnet import DemoMarket, pool_market
from defiagent.devchain import artifacts
from defiagent.devchain.deploy import UniswapV2Deployment, deploy
from defiagent.errors import ConfigError, InfraError
from defiagent.protocols import registry
from defiagent.protocols.base import DevnetContract, DevnetDeployment

TOKEN_SUPPLY = 10**27
TOKENS = (("Demo USD", "DUSD"), ("Demo Token", "DTKN"))


@dataclass
class Deployed:
    market: DemoMarket  # the V2 market: the strategy's pair and how the agent is funded
    deployments: dict[str, DevnetDeployment]
    contracts: list[Contract]  # to review into the allowlist, each with its scope
    protocols: dict[str, Any]  # agent.toml [protocols]
    left_out: dict[str, str]  # protocol -> why it is deployed but not allowlisted


def deploy_all(w3: Web3, *, on_step: Callable[[str], None]) -> Deployed:
    deployer = Web3.to_checksum_address(w3.eth.accounts[0])
    on_step("deploying the devnet's tokens: Demo USD (DUSD), Demo Token (DTKN)")
    deployed: dict[str, DevnetDeployment] = {"erc20": _tokens(w3, deployer)}
    for adapter in registry.PROTOCOLS:
        made = adapter.deploy_devnet(w3, deployer, deployed)
        if made is not None:
            on_step(f"deployed {adapter.title}: {', '.join(c.name for c in made.contracts)}")
            deployed[adapter.name] = made
    if "uniswap-v2" not in deployed or "weth" not in deployed:
        raise ConfigError("the protocol registry deployed no Uniswap V2 or no WETH on the devnet")
    on_step("pooling Uniswap V2: DUSD/DTKN and WETH/DUSD")
    market, deployed["uniswap-v2"] = _v2_market(w3, deployed)
    unvetted = {name: why for name, d in deployed.items() if (why := _unvettable(name, d))}
    if {"erc20", "weth", "uniswap-v2"} & set(unvetted):
        raise InfraError(f"the devnet's core contracts cannot be reviewed: {unvetted}")
    for name, why in unvetted.items():
        on_step(f"WARNING: {name} left out of the allowlist and agent.toml: {why}")
    reviewed = {k: d for k, d in deployed.items() if k not in unvetted}
    return Deployed(
        market=market,
        deployments=deployed,
        contracts=[
            scoped(c.address, c.name, name, c.scope)
            for name, d in reviewed.items()
            for c in d.contracts
        ],
        protocols=protocols_table(reviewed),
        left_out=unvetted,
    )


def _unvettable(protocol: str, d: DevnetDeployment) -> str | None:
    """Why a deployment's contracts cannot go through the review workflow, or None.

    Review compiles the published sources and binds them to the deployed code; a scope
    whose package ships no sources (`no_sources`) is reviewed on its bytecode alone. A
    scope that says neither cannot be reviewed, and an entry that was not reviewed is
    never written. So that protocol stays off the allowlist, and out of agent.toml, where
    the agent would refuse to start on a contract it does not list.
    """
    adapter = registry.by_name(protocol)
    if adapter is None:
        return "not a registered protocol"
    missing = sorted(
        {
            c.scope
            for c in d.contracts
            if adapter.scope(c.scope).npm_source is None
            and adapter.scope(c.scope).no_sources is None
        }
    )
    if missing:
        scopes = f"{', '.join(missing)} scope" + ("s name" if len(missing) > 1 else " names")
        return f"its {scopes} no sources to vet (npm_source)"
    return None


def _tokens(w3: Web3, deployer: str) -> DevnetDeployment:
    made = [
        deploy(w3, artifacts.demo_token(), name, symbol, TOKEN_SUPPLY, sender=deployer)
        for name, symbol in TOKENS
    ]
    dusd, dtkn = (m.address for m in made)
    return DevnetDeployment(
        protocol="erc20",
        contracts=[
            DevnetContract(address=m.address, name=f"{name} ({symbol})", scope="token")
            for m, (name, symbol) in zip(made, TOKENS, strict=True)
        ],
        # token_a/token_b: where the V3 and vault deployments look for the devnet's tokens.
        extra={"token_a": dusd, "token_b": dtkn, "tokens": {"DUSD": dusd, "DTKN": dtkn}},
    )


def _v2_market(
    w3: Web3, deployed: dict[str, DevnetDeployment]
) -> tuple[DemoMarket, DevnetDeployment]:
    v2, tokens = deployed["uniswap-v2"], deployed["erc20"].extra
    dex = UniswapV2Deployment(
        chain_id=w3.eth.chain_id,
        deployer=w3.eth.accounts[0],
        factory=v2.settings["factory"],
        router=v2.settings["router"],
        weth=deployed["weth"].settings["weth"],
        token_a=tokens["token_a"],
        token_b=tokens["token_b"],
    )
    market = pool_market(w3, dex)
    assert market.dex.pair is not None  # pool_market made it
    pairs = [
        DevnetContract(address=market.dex.pair, name="UniswapV2Pair DUSD/DTKN", scope="pair"),
        DevnetContract(address=market.weth_pair, name="UniswapV2Pair WETH/DUSD", scope="pair"),
    ]
    extra = v2.extra | {"market": market.model_dump(mode="json")}
    return market, v2.model_copy(update={"contracts": [*v2.contracts, *pairs], "extra": extra})


def protocols_table(deployed: dict[str, DevnetDeployment]) -> dict[str, Any]:
    """agent.toml's [protocols]: the keys of protocols without a settings model at the top
    (router, weth, factory, as before adapters), every other one as [protocols.<name>]."""
    table: dict[str, Any] = {}
    for name, d in deployed.items():
        adapter = registry.by_name(name)
        if not d.settings or adapter is None:
            continue
        if adapter.Settings is None:
            table.update(d.settings)
        else:
            table[name] = d.settings
    return table
