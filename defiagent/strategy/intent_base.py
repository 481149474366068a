"""The intent models every protocol shares: the base, swaps, approvals and the raw call.

Protocol folders (`defiagent/protocols/<name>/`) import their intents from here, never from
`defiagent.strategy.intents`, which assembles the union of all kinds from the registry.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from defiagent.types import Address, Wei

DEFAULT_VENUE = "uniswap-v2"


class IntentBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(default_factory=lambda: uuid.uuid4().hex, pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    reason: str = Field(default="", max_length=500)  # the strategy's own words, audited
    deadline_seconds: int = Field(default=300, gt=0, le=3600)
    kind: str  # each model narrows it to its own Literal


# Fee tier of one hop in hundredths of a bip (a uint24, e.g. 3000 = 0.3 %).
FeeTier = Annotated[int, Field(ge=0, lt=2**24)]
Venue = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")]


class SwapExactIn(IntentBase):
    kind: Literal["swap-exact-in"] = "swap-exact-in"
    token_in: Address
    token_out: Address
    amount_in: Wei
    min_amount_out: Wei
    recipient: Address | None = None  # None means the agent itself
    # Which protocol carries the swap (a registry name); the planner refuses one it lacks.
    venue: Venue = DEFAULT_VENUE
    # Intermediate tokens of a multi-hop path, in order; empty: the venue picks the route.
    via: list[Address] = Field(default=[], max_length=3)
    # The fee tier of each hop (Uniswap V3); None for venues without tiers.
    fees: list[FeeTier] | None = Field(default=None, min_length=1, max_length=4)


class SwapExactOut(IntentBase):
    kind: Literal["swap-exact-out"] = "swap-exact-out"
    token_in: Address
    token_out: Address
    amount_out: Wei
    max_amount_in: Wei
    recipient: Address | None = None
    venue: Venue = DEFAULT_VENUE
    via: list[Address] = Field(default=[], max_length=3)
    fees: list[FeeTier] | None = Field(default=None, min_length=1, max_length=4)


# A swap of either kind: what venue planners are handed.
Swap = SwapExactIn | SwapExactOut


class Approve(IntentBase):
    kind: Literal["approve"] = "approve"
    token: Address
    spender: Address
    amount: Wei


class RawCall(IntentBase):
    """A call the strategy composed itself. Exists so a rogue strategy can be refused."""

    kind: Literal["raw-call"] = "raw-call"
    target: Address
    data: str = Field(default="0x", pattern=r"^0x([0-9a-fA-F]{2}){0,32768}$")
    value: Wei = 0


# The kinds the core defines; the protocols' own come from the registry.
CORE_INTENT_MODELS: tuple[type[IntentBase], ...] = (SwapExactIn, SwapExactOut, Approve, RawCall)
