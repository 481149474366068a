"""A planned call: the one concrete transaction an intent turned into."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from defiagent.types import Address, Wei


class ExpectedDelta(BaseModel):
    """What the intent allows to happen to one asset of the agent (token None = ETH)."""

    model_config = ConfigDict(frozen=True)

    token: Address | None
    min_delta: int  # signed: e.g. -amount_in for a spend, +min_out for a receipt


class SharePreview(BaseModel):
    """An ERC-4626 call's own promise: the view the simulator reads on the fork right before
    the call, in the same simulated block, whose answer is the shares the call should mint
    ("mint": previewDeposit) or burn ("burn": previewWithdraw). The vault is the share token."""

    model_config = ConfigDict(frozen=True)

    vault: Address
    data: str  # 0x-prefixed calldata of the preview function on the vault
    side: Literal["mint", "burn"]


class PlannedCall(BaseModel):
    model_config = ConfigDict(frozen=True)

    intent_id: str
    intent_kind: str
    target: Address
    data: str  # 0x-prefixed calldata
    value: Wei = 0
    sender: Address
    # The account whose assets the call moves, when it is not the sender: a Safe, whose
    # guard module the agent's key calls (defiagent.safe). None: the sender itself.
    holder: Address | None = None
    expected: list[ExpectedDelta] = []  # assets the intent may move; nothing else may move
    allowed_approvals: dict[str, Wei] = {}  # "token:spender" -> max allowance after the call
    description: str = ""
    # Names a call that repeats another call's target and function in the same plan (the
    # approve to 0 that must precede an approve when an allowance is left, for USDT-style
    # tokens): it keys the call apart in the journal. Empty for every other call.
    step: str = ""
    # token -> the most of one transfer (bps) its allowlist entry declares the token keeps
    # (fee-on-transfer tokens the call moves); what the round trip may expect, never more.
    transfer_fees: dict[str, int] = {}
    # An ERC-4626 deposit or withdraw: what the vault previews, compared by the
    # shares-as-previewed outcome check with the shares the simulated call minted or burnt.
    share_preview: SharePreview | None = None

    @property
    def journal_key(self) -> str:
        """The write-ahead journal's key: one per call of an intent (its approve and its swap
        differ by target and selector; an approve to 0 before an approve by its step),
        stable when the same intent is planned again."""
        key = f"{self.intent_id}:{self.target.lower()}:{self.data[:10].lower()}"
        return f"{key}:{self.step}" if self.step else key

    @property
    def owner(self) -> str:
        """Whose balances and approvals the call changes (the holder, else the sender)."""
        return self.holder or self.sender
