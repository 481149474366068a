"""Deploy a Safe 1.4.1 (proxy factory + singleton, real npm bytecode) and its guard module.

On a chain where Safe 1.4.1 is deployed (mainnet and most L2s, at the canonical
addresses) only the proxy and the guard are new. On a development chain `deploy_infra`
deploys the singleton, the factory, MultiSendCallOnly and the fallback handler from the
same npm artifacts first. The Safe's owners are the operator's keys, M of N; the agent's
key is neither an owner nor a module: it can only call the guard module's `execute`.
"""

from __future__ import annotations

from typing import Any

from eth_abi import encode as abi_encode
from eth_utils import to_checksum_address
from pydantic import BaseModel, ConfigDict
from web3 import Web3
from web3.logs import DISCARD

from defiagent.errors import ConfigError, Refused
from defiagent.safe import artifacts
from defiagent.safe.chain import SafeRef, send
from defiagent.safe.safe_tx import ZERO
from defiagent.types import Address

# Safe 1.4.1 canonical deployments (safe-deployments, identical on every EVM chain).
CANONICAL = {
    "singleton": "0x41675C099F32341bf84BFc5382aF534df5C7461a",
    "factory": "0x4e1DCf7AD4e460CfD30791CCC4F9c8a4f820ec67",
    "multi_send": "0x9641d764fc13c8B624c04430C7356C1C7C8102e2",
    "fallback_handler": "0xfd0732Dc9E303f09fCEf3a7388Ad10A83459Ec99",
}


class SafeInfra(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    singleton: Address
    factory: Address
    multi_send: Address
    fallback_handler: Address


class SafeDeployment(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    chain_id: int
    safe: Address
    guard: Address
    agent: Address
    owners: list[Address]
    threshold: int
    infra: SafeInfra

    @property
    def ref(self) -> SafeRef:
        return SafeRef(address=self.safe, guard=self.guard, multi_send=self.infra.multi_send)


def _create(w3: Web3, payer: Any, artifact: artifacts.Artifact, args: bytes = b"") -> str:
    receipt = send(w3, payer, None, artifact.bytecode + args.hex())
    address = receipt["contractAddress"]
    if address is None:
        raise Refused(f"deploying {artifact.name} returned no contract address")
    return str(to_checksum_address(address))


def canonical_infra(w3: Web3) -> SafeInfra | None:
    """The canonical Safe 1.4.1 contracts, if this chain has them with the npm code."""
    want = {
        "singleton": artifacts.safe_singleton(),
        "factory": artifacts.proxy_factory(),
        "multi_send": artifacts.multi_send_call_only(),
        "fallback_handler": artifacts.fallback_handler(),
    }
    for role, artifact in want.items():
        code = bytes(w3.eth.get_code(to_checksum_address(CANONICAL[role]))).hex()
        if not code or "0x" + code != artifact.deployed_bytecode:
            return None
    return SafeInfra(**CANONICAL)


def deploy_infra(w3: Web3, payer: Any) -> SafeInfra:
    """Singleton, proxy factory, MultiSendCallOnly and fallback handler, from npm bytecode."""
    return SafeInfra(
        singleton=_create(w3, payer, artifacts.safe_singleton()),
        factory=_create(w3, payer, artifacts.proxy_factory()),
        multi_send=_create(w3, payer, artifacts.multi_send_call_only()),
        fallback_handler=_create(w3, payer, artifacts.fallback_handler()),
    )


def check_roles(owners: list[str], threshold: int, agent: str) -> tuple[list[str], str]:
    """Owners (each once), 1 <= M <= N, and an agent key that is not an owner."""
    checked = [str(to_checksum_address(o)) for o in owners]
    if not checked or len(set(checked)) != len(checked):
        raise ConfigError("the Safe needs at least one owner, each listed once")
    if not 1 <= threshold <= len(checked):
        raise ConfigError(f"threshold {threshold} is not between 1 and {len(checked)} owners")
    key = str(to_checksum_address(agent))
    if key in checked:
        raise ConfigError(
            f"the agent {key} must not be an owner of the Safe: an owner key can sign "
            "anything once the threshold is met, past every guard rule"
        )
    return checked, key


def deploy_safe(
    w3: Web3,
    payer: Any,
    *,
    owners: list[str],
    threshold: int,
    agent: str,
    infra: SafeInfra,
    salt: int = 0,
) -> SafeDeployment:
    """A new Safe proxy owned by `owners` (threshold M) and its AllowlistGuard for `agent`.

    The guard starts with no rules and is not yet a module: the owners' first sync-guard
    transaction enables it and loads the rules (see defiagent.safe.sync)."""
    owners, agent = check_roles(owners, threshold, agent)
    singleton = artifacts.safe_singleton()
    setup = w3.eth.contract(abi=singleton.abi).encode_abi(
        "setup", [owners, threshold, ZERO, b"", infra.fallback_handler, ZERO, 0, ZERO]
    )
    factory = w3.eth.contract(
        address=to_checksum_address(infra.factory), abi=artifacts.proxy_factory().abi
    )
    data = factory.encode_abi(
        "createProxyWithNonce", [infra.singleton, bytes.fromhex(setup[2:]), salt]
    )
    receipt = send(w3, payer, infra.factory, data)
    created = factory.events.ProxyCreation().process_receipt(receipt, errors=DISCARD)
    if not created:
        raise Refused("the proxy factory created no Safe")
    safe = to_checksum_address(created[0]["args"]["proxy"])
    guard = _create(w3, payer, artifacts.guard(), abi_encode(["address", "address"], [safe, agent]))
    return SafeDeployment(
        chain_id=w3.eth.chain_id,
        safe=safe,
        guard=guard,
        agent=agent,
        owners=owners,
        threshold=threshold,
        infra=infra,
    )
