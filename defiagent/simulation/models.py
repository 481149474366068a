"""What a simulated transaction did."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from defiagent.types import Address

ETH = "ETH"  # key of native ether in SimulationOutcome.deltas


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
    allowance: int  # ApprovalForAll and ERC-721 approvals count as unlimited (2**256 - 1)


class SimulationOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    success: bool
    revert_reason: str | None = None
    gas_used: int
    block_number: int  # the fork block the simulation ran on
    logs: list[Log] = []
    # token address (or "ETH") -> signed change for the agent. ETH excludes gas fees (the
    # simulation runs with a zero base fee; fees are capped by the executor's FeePolicy).
    # Tokens named in the plan are measured by balanceOf before/after; others from logs.
    deltas: dict[str, int] = {}
    approvals: list[ApprovalChange] = []  # approvals granted by the agent during the call
    touched: list[Address] = []  # every contract the call trace entered
    revert_data: str | None = None  # raw revert bytes, for custom errors
    sender: Address | None = None  # the agent address the deltas and approvals are about
    # keccak256 of the runtime code ON THE FORK, at block_number, of every address the call
    # entered (code or not): the code that was simulated, to compare with the pins. None:
    # not read (an outcome not made by the Simulator); the fork-code-pinned check refuses.
    # Keys (checksummed by the simulator) are plain str: validating them is the hot path.
    fork_codehashes: dict[str, str] | None = None
    # contract -> the addresses whose code it ran by DELEGATECALL/CALLCODE in the trace
    # (a proxy -> the implementation it actually used), in first-seen order.
    delegations: dict[str, list[str]] = {}
    # What the call's share preview (PlannedCall.share_preview, an ERC-4626 previewDeposit or
    # previewWithdraw) answered on the fork just before the call; None: not asked, or the
    # preview reverted or answered something that is not a uint256.
    previewed_shares: int | None = None


class TokenMeta(BaseModel):
    """How to print a token amount to a person."""

    model_config = ConfigDict(frozen=True)

    symbol: str
    decimals: int
