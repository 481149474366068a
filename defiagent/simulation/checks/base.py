"""The shape of an outcome check (Slither-detector style) and what every check may read."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from defiagent.allowlist.models import ActiveAllowlist, Severity
from defiagent.decisions import Verdict
from defiagent.execution.models import PlannedCall
from defiagent.simulation.models import ETH, SimulationOutcome, TokenMeta


class CheckContext(BaseModel):
    """What the checks compare a simulated outcome with. Pure data: checks do no I/O."""

    model_config = ConfigDict(frozen=True)

    allowlist: ActiveAllowlist
    max_gas: int = 1_000_000  # gas-under-cap: refuse a call that would burn more than this
    tokens: dict[str, TokenMeta] = {}  # for amounts a person can read (Simulator.token_meta)
    # shares-as-previewed: how far (bps) an ERC-4626 call's shares may fall short of (deposit)
    # or exceed (withdraw) its vault's own preview on the fork ([simulation]).
    share_tolerance_bps: int = Field(default=10, ge=0, le=10_000)

    def asset_name(self, asset: str | None) -> str:
        if asset is None or asset == ETH:
            return "ETH"
        meta = self.tokens.get(asset)
        if meta is not None:
            return meta.symbol
        entry = self.allowlist.get(asset)
        return f"{entry.name} ({asset})" if entry is not None else f"token {asset}"

    def amount(self, asset: str | None, value: int) -> str:
        """'1.5 DTKN' when decimals are known, else raw units with the token named."""
        value = abs(value)
        if asset is None or asset == ETH:
            decimals: int | None = 18
        else:
            meta = self.tokens.get(asset)
            decimals = meta.decimals if meta is not None else None
        name = self.asset_name(asset)
        if decimals is None:
            return f"{value} base units of {name}"
        whole, frac = divmod(value, 10**decimals)
        text = f"{whole}.{str(frac).rjust(decimals, '0').rstrip('0')}" if frac else str(whole)
        return f"{text} {name}"


class OutcomeCheck(ABC):
    """One check of a simulated outcome: metadata on the class, one method."""

    id: ClassVar[str]
    description: ClassVar[str]
    severity: ClassVar[Severity] = Severity.HIGH
    rationale: ClassVar[str] = ""  # why the check exists: the attack it stops

    @abstractmethod
    def check(self, call: PlannedCall, outcome: SimulationOutcome, ctx: CheckContext) -> Verdict:
        """Allow, or refuse with a reason naming tokens and amounts."""

    def allow(self) -> Verdict:
        return Verdict.allow(self.id)

    def refuse(self, reason: str) -> Verdict:
        return Verdict.refuse(self.id, reason)
