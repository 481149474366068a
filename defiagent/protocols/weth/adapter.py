"""WETH9 as a protocol: wrap/unwrap intents, its scope, its devnet deployment."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from defiagent.allowlist.models import ConstraintKind, Role
from defiagent.protocols.base import (
    ContractScope,
    DevnetContract,
    DevnetDeployment,
    PlanContext,
    ProtocolAdapter,
    ProtocolAddresses,
    ProtocolPlanner,
)
from defiagent.protocols.scopes import fn
from defiagent.protocols.weth.functions import APPROVE, DEPOSIT, WITHDRAW
from defiagent.protocols.weth.intents import Unwrap, Wrap
from defiagent.protocols.weth.planner import WethPlanner

if TYPE_CHECKING:
    from web3 import Web3


class Weth(ProtocolAdapter):
    name = "weth"
    title = "WETH9"
    kinds = frozenset({"wrap", "unwrap"})
    intent_models = (Wrap, Unwrap)

    def planner(self, ctx: PlanContext) -> ProtocolPlanner:
        return WethPlanner(ctx)

    def scopes(self) -> Sequence[ContractScope]:
        return (
            ContractScope(
                kind="weth",
                role=Role.WRAPPED_NATIVE,
                functions=(
                    fn(DEPOSIT, payable=True),
                    fn(WITHDRAW),
                    fn(APPROVE, ("guy", ConstraintKind.IN_ALLOWLIST)),
                ),
                npm_source="weth9",
            ),
        )

    def contracts(self, addresses: ProtocolAddresses) -> Mapping[str, str]:
        return {"protocols.weth": addresses.weth}

    def deploy_devnet(
        self, w3: Web3, deployer: str, deployed: Mapping[str, DevnetDeployment]
    ) -> DevnetDeployment:
        from defiagent.devchain import artifacts
        from defiagent.devchain.deploy import deploy

        weth = deploy(w3, artifacts.weth9(), sender=deployer)
        return DevnetDeployment(
            protocol=self.name,
            contracts=[DevnetContract(address=weth.address, name="WETH9", scope="weth")],
            settings={"weth": weth.address},
        )
