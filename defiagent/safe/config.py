"""`[safe]` in agent.toml: trade from this Safe through its AllowlistGuard module."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from defiagent.types import Address

CANONICAL_MULTI_SEND = "0x9641d764fc13c8B624c04430C7356C1C7C8102e2"  # Safe 1.4.1


class SafeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    address: Address = Field(description="the Safe that holds the funds (the agent trades for it)")
    guard: Address = Field(description="its AllowlistGuard module, the agent key's only entry")
    multi_send: Address = Field(
        default=CANONICAL_MULTI_SEND,
        description="the MultiSendCallOnly 1.4.1 the guard allows by delegatecall",
    )
