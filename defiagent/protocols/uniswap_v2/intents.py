"""The intents only Uniswap V2 serves: adding and removing liquidity on a pair."""

from __future__ import annotations

from typing import Literal

from defiagent.strategy.intent_base import IntentBase
from defiagent.types import Address, Wei


class AddLiquidity(IntentBase):
    kind: Literal["add-liquidity"] = "add-liquidity"
    token_a: Address
    token_b: Address
    amount_a: Wei
    amount_b: Wei
    min_amount_a: Wei
    min_amount_b: Wei
    recipient: Address | None = None


class RemoveLiquidity(IntentBase):
    kind: Literal["remove-liquidity"] = "remove-liquidity"
    token_a: Address
    token_b: Address
    liquidity: Wei
    min_amount_a: Wei
    min_amount_b: Wei
    recipient: Address | None = None
