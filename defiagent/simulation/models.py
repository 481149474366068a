"""What a simulated transaction did."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from defiagent.types import Address


class Log(BaseModel):
    model_config = ConfigDict(frozen=True)

    address: Address
    topics: list[str]
    data: str


class ApprovalChange(BaseModel):
    model_config = ConfigDict(frozen=True)

    token: Address
    owner: Address
    spender: Address
    allowance: int


class SimulationOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    success: bool
    revert_reason: str | None = None
    gas_used: int
    block_number: int  # the fork block the simulation ran on
    logs: list[Log] = []
    deltas: dict[str, int] = {}  # token address (or "ETH") -> signed change for the agent
    approvals: list[ApprovalChange] = []  # approvals granted by the agent during the call
    touched: list[Address] = []  # every contract the call trace entered
