"""Exit rules: when the agent itself closes a strategy's position.

Each rule looks at one position at the current sane price. The exit is an ordinary
intent (sell the position into the numeraire) that goes through the same planner, guard,
fork simulation and outcome checks as any other; a manipulated pool refuses it too.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

from pydantic import Field

from defiagent.guard.base import C, Described, RuleConfig, Severity
from defiagent.risk.positions import Position


class ExitRule(Described[C]):
    group = "exit"
    section: ClassVar[str]  # every exit rule is configured, under [risk]

    @abstractmethod
    def exit_reason(self, position: Position, price: float | None) -> str | None:
        """Why the position must be closed now; None to keep it."""


class ExitConfig(RuleConfig):
    enabled: bool = True
    max_slippage_bps: float = Field(
        default=50,
        gt=0,
        le=5_000,
        description="the exit's minimum out, below the pool quote (keep it under [guard.slippage])",
    )


class StopLossConfig(ExitConfig):
    stop_loss_pct: float = Field(default=10.0, gt=0, le=100, description="loss vs cost, percent")


class StopLoss(ExitRule[StopLossConfig]):
    id = "stop-loss"
    title = "StopLoss"
    description = "sell a strategy's position into the numeraire once it lost enough vs its cost"
    threat = "a losing position held on hope while it keeps falling"
    severity = Severity.HIGH
    section = "stop_loss"
    Config = StopLossConfig

    def exit_reason(self, position: Position, price: float | None) -> str | None:
        pnl = position.pnl_pct(price)
        if pnl is not None and pnl <= -self.config.stop_loss_pct:
            return (
                f"stop-loss: the {position.strategy} position is {pnl:.2f}% below its cost "
                f"(limit -{self.config.stop_loss_pct:g}%)"
            )
        return None

    def explain(self) -> str:
        return f"{self.title}: close a position {self.config.stop_loss_pct:g}% below its cost"


class TakeProfitConfig(ExitConfig):
    take_profit_pct: float = Field(default=30.0, gt=0, description="gain vs cost, percent")


class TakeProfit(ExitRule[TakeProfitConfig]):
    id = "take-profit"
    title = "TakeProfit"
    description = "sell a strategy's position into the numeraire once it gained enough vs its cost"
    threat = "gains given back: a position never closed while it was ahead"
    severity = Severity.LOW
    section = "take_profit"
    Config = TakeProfitConfig

    def exit_reason(self, position: Position, price: float | None) -> str | None:
        pnl = position.pnl_pct(price)
        if pnl is not None and pnl >= self.config.take_profit_pct:
            return (
                f"take-profit: the {position.strategy} position is {pnl:.2f}% above its cost "
                f"(target {self.config.take_profit_pct:g}%)"
            )
        return None

    def explain(self) -> str:
        return f"{self.title}: close a position {self.config.take_profit_pct:g}% above its cost"
