"""ERC-4626 vaults as a protocol: deposit/withdraw intents, the vault scope, devnet vault."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from defiagent.allowlist.models import AllowedFunction, ArgRole, ConstraintKind, Role
from defiagent.protocols.base import (
    ContractScope,
    DevnetContract,
    DevnetDeployment,
    PlanContext,
    ProtocolAdapter,
    ProtocolAddresses,
    ProtocolPlanner,
)
from defiagent.protocols.erc4626.functions import DEPOSIT, WITHDRAW
from defiagent.protocols.erc4626.intents import VaultDeposit, VaultWithdraw
from defiagent.protocols.erc4626.planner import Erc4626Planner
from defiagent.protocols.erc4626.settings import Erc4626Settings
from defiagent.protocols.scopes import fn

if TYPE_CHECKING:
    from web3 import Web3

SELF = ConstraintKind.EQUALS_SELF
NAME = "erc4626"
DEVNET_SEED = 1_000 * 10**18  # 1,000 DUSD (18 decimals)


def vault_functions() -> tuple[AllowedFunction, ...]:
    """What a reviewer approves on a vault: deposit and withdraw, the shares and the assets
    going to the agent alone (receiver), out of the agent's own shares alone (owner). Both
    are constrained equals-self, so recipient-is-self refuses anyone else; receiver also
    has its role declared. Neither is a trade for the slippage, price and deadline rules:
    the share price is checked on the fork (shares-as-previewed), the amounts by the
    intent's deltas."""
    return (
        fn(DEPOSIT, ("receiver", SELF), roles={"receiver": ArgRole.RECIPIENT}),
        fn(WITHDRAW, ("receiver", SELF), ("owner", SELF), roles={"receiver": ArgRole.RECIPIENT}),
    )


class Erc4626(ProtocolAdapter):
    name = NAME
    title = "ERC-4626 vaults"
    kinds = frozenset({"vault-deposit", "vault-withdraw"})
    intent_models = (VaultDeposit, VaultWithdraw)
    Settings = Erc4626Settings

    def planner(self, ctx: PlanContext) -> ProtocolPlanner:
        return Erc4626Planner(ctx, self.vaults(ctx.addresses))

    def vaults(self, addresses: ProtocolAddresses) -> Erc4626Settings:
        settings = self.settings(addresses)
        assert settings is None or isinstance(settings, Erc4626Settings)
        return settings or Erc4626Settings()

    def contracts(self, addresses: ProtocolAddresses) -> Mapping[str, str]:
        return {
            f"protocols.erc4626.vaults[{n}]": v.address
            for n, v in enumerate(self.vaults(addresses).vaults)
        }

    def spenders(self, addresses: ProtocolAddresses) -> Sequence[str]:
        # Each vault pulls its asset: the portfolio reads those allowances, so a deposit
        # approves only when the allowance is short.
        return [v.address for v in self.vaults(addresses).vaults]

    def tokens(self, addresses: ProtocolAddresses) -> Sequence[str]:
        """The tokens this protocol issues to the agent: each vault's shares."""
        return [v.address for v in self.vaults(addresses).vaults]

    def token_prices(
        self,
        w3: Web3,
        addresses: ProtocolAddresses,
        prices: Mapping[str, float],
        *,
        block: int,
    ) -> dict[str, float]:
        """Numeraire per smallest share unit of each vault whose asset has a sane price."""
        from defiagent.protocols.erc4626.prices import share_prices

        return share_prices(w3, self.vaults(addresses).vaults, prices, block=block)

    def scopes(self) -> Sequence[ContractScope]:
        # A vault pulls its asset from the agent (an approval's spender), hence `spender`.
        return (
            ContractScope(
                kind="vault",
                role=Role.SPENDER,
                functions=vault_functions(),
                npm_source="demo-vault",
            ),
        )

    def deploy_devnet(
        self, w3: Web3, deployer: str, deployed: Mapping[str, DevnetDeployment]
    ) -> DevnetDeployment | None:
        from defiagent.protocols.erc4626.devnet import deploy_vault

        # A vault over the devnet's first token (Demo USD), whoever deployed it.
        asset = next((d.extra["token_a"] for d in deployed.values() if "token_a" in d.extra), None)
        if asset is None:
            return None
        # Seeded by the deployer when it holds the asset: shares outstanding, as on a live
        # vault, so the first deposit is no inflation-attack target.
        v = deploy_vault(w3, asset, deployer=deployer, seed_assets=DEVNET_SEED, seed_if_held=True)
        return DevnetDeployment(
            protocol=self.name,
            contracts=[DevnetContract(address=v.vault, name=v.name, scope="vault")],
            settings=v.settings(),
            extra=v.model_dump(mode="json"),
        )
