"""A Python strategy object behind the same port as the sandboxed host. TESTS ONLY.

`run`, `dry-run` and the demo never use this: they start every strategy, built-ins
included, in its own sandboxed process (`defiagent.strategy.host`). Tests of the guard,
the risk limits and the loop use it to script intents without a child process. It still
keeps the boundary's data rules: the object gets fresh snapshot models built from the
tick's JSON (never the agent's own), its name is read once, and its answer goes back as
JSON for the loop to parse strictly.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from defiagent.market.models import MarketSnapshot, PortfolioSnapshot
from defiagent.strategy.config import StrategyLimits
from defiagent.strategy.host import Proposal
from defiagent.strategy.protocol import Tick


class InProcessStrategy:
    def __init__(self, strategy: Any, name: str | None = None) -> None:
        self._strategy = strategy
        self.name = str(name if name is not None else strategy.name)
        self.limits = StrategyLimits(max_intents=200)
        describe = getattr(strategy, "describe", None)
        self.description = describe() if callable(describe) else self.name

    def propose(self, tick: Tick) -> Proposal:
        try:
            market = MarketSnapshot.model_validate(tick.market)
            portfolio = PortfolioSnapshot.model_validate(tick.portfolio)
            out = list(self._strategy.propose(market, portfolio) or [])
        except Exception as exc:
            return Proposal(
                error=f"the strategy reported an error: {type(exc).__name__}: {exc}",
                failure="strategy-error",
            )
        items = [i.model_dump(mode="json") if isinstance(i, BaseModel) else i for i in out]
        cap = self.limits.max_intents
        return Proposal(intents=items[:cap], dropped=max(0, len(items) - cap))

    def close(self) -> None:
        close = getattr(self._strategy, "close", None)
        if callable(close):
            close()
