"""The strategy interface: snapshots in, intents out. A strategy never sees a key or an RPC."""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from defiagent.market.models import MarketSnapshot, PortfolioSnapshot
from defiagent.strategy.intents import Intent


class StrategyParams(BaseModel):
    """Base for each strategy's parameters (the `[strategy.params]` table of agent.toml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@runtime_checkable
class Strategy(Protocol):
    """Untrusted: whatever it returns goes through the planner and the guard."""

    name: ClassVar[str]

    def propose(self, market: MarketSnapshot, portfolio: PortfolioSnapshot) -> list[Intent]: ...

    def describe(self) -> str:
        """One sentence for start-up: what this strategy does with which parameters."""
        ...
