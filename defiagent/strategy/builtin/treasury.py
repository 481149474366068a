"""Treasury: keep a reserve of `asset` at hand and the rest in an ERC-4626 vault.

Each tick, when the idle balance is more than `band` above `reserve`, deposit the excess
(at most `max_move`); when it is more than `band` below and shares are held, withdraw the
shortfall (at most `max_move`). The share-price bounds are the operator's: a deposit
must mint at least `assets / max_share_price` shares and a withdraw may burn at most
`assets / min_share_price`, so a vault whose price jumped outside them is not traded
(the agent also checks the shares against the vault's own preview on a fork).
"""

from __future__ import annotations

from pydantic import Field, model_validator

from defiagent.market.models import MarketSnapshot, PortfolioSnapshot
from defiagent.strategy.intents import Intent, VaultDeposit, VaultWithdraw
from defiagent.strategy.sdk import Strategy, StrategyParams, run
from defiagent.types import Address, Wei


class TreasuryParams(StrategyParams):
    asset: Address
    vault: Address
    reserve: Wei  # idle `asset` to keep, in its smallest unit
    band: Wei = 0  # no move while idle is within reserve ± band
    max_move: Wei = Field(gt=0)  # the most `asset` deposited or withdrawn in one tick
    # Whole assets per whole share the operator accepts (an OpenZeppelin vault with no
    # decimals offset starts at 1).
    min_share_price: float = Field(gt=0)
    max_share_price: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> TreasuryParams:
        if self.min_share_price > self.max_share_price:
            raise ValueError("min_share_price is above max_share_price")
        return self


class Treasury(Strategy):
    Params = TreasuryParams

    def __init__(self, params: TreasuryParams) -> None:
        super().__init__(params)
        self.p: TreasuryParams = params

    def describe(self) -> str:
        p = self.p
        return (
            f"treasury: keep {p.reserve} of {p.asset} idle (± {p.band}), the rest in vault "
            f"{p.vault}, at most {p.max_move} moved a tick, share price within "
            f"{p.min_share_price:g}..{p.max_share_price:g}"
        )

    def propose(self, market: MarketSnapshot, portfolio: PortfolioSnapshot) -> list[Intent]:
        p = self.p
        asset, shares = market.token(p.asset), market.token(p.vault)
        if asset is None or shares is None:
            return []  # the agent does not watch them: nothing to value a move with
        # Smallest share units per smallest asset unit at a price of 1 whole per whole.
        scale = 10**shares.decimals / 10**asset.decimals
        idle = portfolio.balance(p.asset)
        if idle > p.reserve + p.band:
            assets = min(idle - p.reserve, p.max_move)
            return [
                VaultDeposit(
                    vault=p.vault,
                    assets=assets,
                    min_shares=max(1, int(assets * scale / p.max_share_price)),
                    reason=f"idle {idle} is above the reserve {p.reserve}: park the excess",
                )
            ]
        if idle < p.reserve - p.band and portfolio.balance(p.vault) > 0:
            held = portfolio.balance(p.vault)
            assets = min(p.reserve - idle, p.max_move, int(held / scale * p.min_share_price))
            if assets <= 0:
                return []
            return [
                VaultWithdraw(
                    vault=p.vault,
                    assets=assets,
                    max_shares=min(held, int(assets * scale / p.min_share_price) + 1),
                    reason=f"idle {idle} is below the reserve {p.reserve}: take some back",
                )
            ]
        return []


if __name__ == "__main__":
    run(Treasury)
