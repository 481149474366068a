"""EIP-1559 fee caps: what the agent will pay at most, and the bumps that replace a stuck tx."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from defiagent.errors import Refused
from defiagent.types import Wei

GWEI = 10**9


def gwei(wei: int) -> str:
    return f"{wei / GWEI:,.4g} gwei"


class FeePolicy(BaseModel):
    """Fee caps (the `[fees]` section of agent.toml). The agent never signs above them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_fee_per_gas: Wei = 100 * GWEI  # cap on maxFeePerGas; a base fee above it refuses
    max_priority_fee_per_gas: Wei = 3 * GWEI  # cap on the tip
    priority_fee_per_gas: Wei = 1 * GWEI  # the tip asked for on a first attempt
    base_fee_multiplier: float = Field(2.0, ge=1.0)  # headroom for the base fee rising
    gas_limit_multiplier: float = Field(1.25, ge=1.0)  # over the simulated gas use
    # Added on top: a first write to a storage slot (e.g. a price accumulator that the
    # simulated block skipped) costs ~20k more on chain; unused gas is not charged.
    gas_limit_headroom: int = Field(30_000, ge=0)
    max_gas_limit: int = Field(1_000_000, gt=21_000)
    replacement_bump_percent: int = Field(12, ge=10)  # nodes refuse a replacement under +10%

    @model_validator(mode="after")
    def _tip_within_caps(self) -> FeePolicy:
        if self.priority_fee_per_gas > self.max_priority_fee_per_gas:
            raise ValueError("priority_fee_per_gas is above max_priority_fee_per_gas")
        if self.max_priority_fee_per_gas > self.max_fee_per_gas:
            raise ValueError("max_priority_fee_per_gas is above max_fee_per_gas")
        return self


class Fees(BaseModel):
    model_config = ConfigDict(frozen=True)

    max_fee_per_gas: int
    max_priority_fee_per_gas: int


def quote(policy: FeePolicy, base_fee: int) -> Fees:
    """Fees for a first attempt at the current base fee, or a refusal above the cap."""
    tip = policy.priority_fee_per_gas
    if base_fee + tip > policy.max_fee_per_gas:
        raise Refused(
            f"the network base fee is {gwei(base_fee)}, so with a {gwei(tip)} tip it exceeds "
            f"the fee cap of {gwei(policy.max_fee_per_gas)}; nothing was signed"
        )
    wanted = int(base_fee * policy.base_fee_multiplier) + tip
    return Fees(max_fee_per_gas=min(wanted, policy.max_fee_per_gas), max_priority_fee_per_gas=tip)


def _bumped(value: int, percent: int) -> int:
    return -(-value * (100 + percent) // 100)  # ceiling: never a hair under the node's rule


def bump(policy: FeePolicy, previous: Fees, base_fee: int) -> Fees:
    """Fees for a replacement: both fields at least +bump% (nodes demand +10%), within caps."""
    percent = policy.replacement_bump_percent
    tip = max(_bumped(previous.max_priority_fee_per_gas, percent), policy.priority_fee_per_gas)
    max_fee = max(
        _bumped(previous.max_fee_per_gas, percent),
        int(base_fee * policy.base_fee_multiplier) + tip,
    )
    if tip > policy.max_priority_fee_per_gas:
        raise Refused(
            f"replacing needs a tip of {gwei(tip)}, above the cap of "
            f"{gwei(policy.max_priority_fee_per_gas)}"
        )
    floor = _bumped(previous.max_fee_per_gas, percent)
    if floor > policy.max_fee_per_gas or base_fee + tip > policy.max_fee_per_gas:
        raise Refused(
            f"replacing needs a max fee of {gwei(max(floor, base_fee + tip))}, above the cap of "
            f"{gwei(policy.max_fee_per_gas)}"
        )
    return Fees(max_fee_per_gas=min(max_fee, policy.max_fee_per_gas), max_priority_fee_per_gas=tip)
