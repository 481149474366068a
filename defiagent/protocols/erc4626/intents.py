"""The intents a vault serves: deposit assets for shares, withdraw assets by burning shares.

Amounts are in the smallest unit: `assets` of the vault's asset, shares of the vault (its
own ERC-20). ERC-4626's deposit and withdraw carry no slippage bound of their own, so the
bound is the intent's: `min_shares` (deposit) and `max_shares` (withdraw) become the share
token's expected balance change, measured on the fork before anything is signed.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from defiagent.strategy.intent_base import IntentBase
from defiagent.types import Address, Wei


class VaultDeposit(IntentBase):
    kind: Literal["vault-deposit"] = "vault-deposit"
    vault: Address
    assets: Wei = Field(gt=0)
    # The least shares accepted; at least 1: a deposit that may mint nothing (an inflated
    # share price rounds it to zero) gives the assets away.
    min_shares: Wei = Field(gt=0)
    receiver: Address | None = None  # None means the agent itself


class VaultWithdraw(IntentBase):
    kind: Literal["vault-withdraw"] = "vault-withdraw"
    vault: Address
    assets: Wei = Field(gt=0)
    max_shares: Wei = Field(gt=0)  # the most shares the agent gives up for `assets`
    receiver: Address | None = None  # None means the agent itself
