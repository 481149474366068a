"""A planned call: the one concrete transaction an intent turned into."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from defiagent.types import Address, Wei


class ExpectedDelta(BaseModel):
    """What the intent allows to happen to one asset of the agent (token None = ETH)."""

    model_config = ConfigDict(frozen=True)

    token: Address | None
    min_delta: int  # signed: e.g. -amount_in for a spend, +min_out for a receipt


class PlannedCall(BaseModel):
    model_config = ConfigDict(frozen=True)

    intent_id: str
    intent_kind: str
    target: Address
    data: str  # 0x-prefixed calldata
    value: Wei = 0
    sender: Address
    expected: list[ExpectedDelta] = []  # assets the intent may move; nothing else may move
    allowed_approvals: dict[str, Wei] = {}  # "token:spender" -> max allowance after the call
    description: str = ""

    @property
    def journal_key(self) -> str:
        """The write-ahead journal's key: one per call of an intent (its approve and its swap
        differ by target and selector), stable when the same intent is planned again."""
        return f"{self.intent_id}:{self.target.lower()}:{self.data[:10].lower()}"
