"""Intents: what an untrusted strategy may ask for. Never raw transactions.

Amounts are integers in the token's smallest unit (wei for ETH), at most 2**256 - 1. A
strategy can name any token or spender it likes: the guard, not this schema, decides what is
allowed. These are also the wire models of docs/strategy-protocol.md: unknown fields are
refused, strings and calldata are bounded, so whatever parses is safe to handle.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from defiagent.types import Address, Wei


class _Intent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(default_factory=lambda: uuid.uuid4().hex, pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    reason: str = Field(default="", max_length=500)  # the strategy's own words, audited
    deadline_seconds: int = Field(default=300, gt=0, le=3600)


class SwapExactIn(_Intent):
    kind: Literal["swap-exact-in"] = "swap-exact-in"
    token_in: Address
    token_out: Address
    amount_in: Wei
    min_amount_out: Wei
    recipient: Address | None = None  # None means the agent itself


class SwapExactOut(_Intent):
    kind: Literal["swap-exact-out"] = "swap-exact-out"
    token_in: Address
    token_out: Address
    amount_out: Wei
    max_amount_in: Wei
    recipient: Address | None = None


class Approve(_Intent):
    kind: Literal["approve"] = "approve"
    token: Address
    spender: Address
    amount: Wei


class Wrap(_Intent):
    kind: Literal["wrap"] = "wrap"
    amount: Wei


class Unwrap(_Intent):
    kind: Literal["unwrap"] = "unwrap"
    amount: Wei


class AddLiquidity(_Intent):
    kind: Literal["add-liquidity"] = "add-liquidity"
    token_a: Address
    token_b: Address
    amount_a: Wei
    amount_b: Wei
    min_amount_a: Wei
    min_amount_b: Wei
    recipient: Address | None = None


class RemoveLiquidity(_Intent):
    kind: Literal["remove-liquidity"] = "remove-liquidity"
    token_a: Address
    token_b: Address
    liquidity: Wei
    min_amount_a: Wei
    min_amount_b: Wei
    recipient: Address | None = None


class RawCall(_Intent):
    """A call the strategy composed itself. Exists so a rogue strategy can be refused."""

    kind: Literal["raw-call"] = "raw-call"
    target: Address
    data: str = Field(default="0x", pattern=r"^0x([0-9a-fA-F]{2}){0,32768}$")
    value: Wei = 0


Intent = Annotated[
    SwapExactIn | SwapExactOut | Approve | Wrap | Unwrap | AddLiquidity | RemoveLiquidity | RawCall,
    Field(discriminator="kind"),
]

# Each intent model by its kind, e.g. for a strategy that builds a schema or parses one kind.
INTENT_MODELS: dict[str, type[_Intent]] = {
    m.model_fields["kind"].default: m
    for m in (
        SwapExactIn,
        SwapExactOut,
        Approve,
        Wrap,
        Unwrap,
        AddLiquidity,
        RemoveLiquidity,
        RawCall,
    )
}
