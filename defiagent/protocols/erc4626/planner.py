"""Vault deposits and withdrawals: an exact approve when needed, then the ERC-4626 call.

Each vault call carries its expected deltas (the asset and the vault's own share token)
and a share preview (previewDeposit / previewWithdraw of the same assets), which the
simulator reads on the fork right before the call for the shares-as-previewed check.
No policy here: a foreign receiver is encoded as asked and the guard refuses it.
"""

from __future__ import annotations

from defiagent.execution.models import ExpectedDelta, PlannedCall, SharePreview
from defiagent.guard.calldata import encode_call
from defiagent.market.models import MarketSnapshot, PortfolioSnapshot
from defiagent.protocols.base import PlanContext, PlanningError, ProtocolPlanner
from defiagent.protocols.erc20.planner import approval_if_needed
from defiagent.protocols.erc4626.functions import (
    DEPOSIT,
    PREVIEW_DEPOSIT,
    PREVIEW_WITHDRAW,
    WITHDRAW,
)
from defiagent.protocols.erc4626.intents import VaultDeposit, VaultWithdraw
from defiagent.protocols.erc4626.settings import Erc4626Settings, VaultSpec
from defiagent.protocols.planning import call, fmt
from defiagent.strategy.intent_base import IntentBase


class Erc4626Planner(ProtocolPlanner):
    def __init__(self, ctx: PlanContext, settings: Erc4626Settings | None) -> None:
        super().__init__(ctx)
        self.settings = settings or Erc4626Settings()

    def plan(
        self, intent: IntentBase, market: MarketSnapshot, portfolio: PortfolioSnapshot
    ) -> list[PlannedCall]:
        if isinstance(intent, VaultDeposit):
            return self.deposit(intent, market, portfolio)
        if isinstance(intent, VaultWithdraw):
            return self.withdraw(intent, market)
        raise PlanningError(f"intent kind {intent.kind!r} is not a vault deposit or withdraw")

    def _vault(self, address: str) -> VaultSpec:
        spec = self.settings.vault(address)
        if spec is None:
            known = ", ".join(v.label for v in self.settings.vaults) or "none"
            raise PlanningError(
                f"vault {address} is not configured in [protocols.erc4626] (known: {known})"
            )
        return spec

    def deposit(
        self, i: VaultDeposit, market: MarketSnapshot, portfolio: PortfolioSnapshot
    ) -> list[PlannedCall]:
        v = self._vault(i.vault)
        receiver = i.receiver or self.agent
        calls = approval_if_needed(
            i,
            self.agent,
            v.asset,
            v.address,
            i.assets,
            market,
            portfolio,
            spender_name=f"the vault {v.label}",
        )
        calls.append(
            call(
                i,
                self.agent,
                v.address,
                encode_call(DEPOSIT, [i.assets, receiver]),
                expected=[
                    ExpectedDelta(token=v.asset, min_delta=-i.assets),
                    ExpectedDelta(token=v.address, min_delta=i.min_shares),
                ],
                share_preview=SharePreview(
                    vault=v.address, data=encode_call(PREVIEW_DEPOSIT, [i.assets]), side="mint"
                ),
                description=(
                    f"deposit {fmt(market, v.asset, i.assets)} into {v.label} for at least "
                    f"{i.min_shares} shares"
                ),
            )
        )
        return calls

    def withdraw(self, i: VaultWithdraw, market: MarketSnapshot) -> list[PlannedCall]:
        v = self._vault(i.vault)
        receiver = i.receiver or self.agent
        # The owner is always the agent: its own shares, never someone else's allowance.
        return [
            call(
                i,
                self.agent,
                v.address,
                encode_call(WITHDRAW, [i.assets, receiver, self.agent]),
                expected=[
                    ExpectedDelta(token=v.address, min_delta=-i.max_shares),
                    ExpectedDelta(token=v.asset, min_delta=i.assets),
                ],
                share_preview=SharePreview(
                    vault=v.address, data=encode_call(PREVIEW_WITHDRAW, [i.assets]), side="burn"
                ),
                description=(
                    f"withdraw {fmt(market, v.asset, i.assets)} from {v.label} for at most "
                    f"{i.max_shares} shares"
                ),
            )
        ]
