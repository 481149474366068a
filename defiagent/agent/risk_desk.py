"""Per-strategy risk: each strategy's guard and exit rules, its pauses, its positions.

The loop asks the desk, each tick: which strategies are paused and why (a pausing limit
fired), which positions the agent must close itself (stop-loss, take-profit), and the
risk picture to record (value, PnL, exposure, limit usage) — all from the trade ledger,
on-chain balances and sane prices.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from defiagent.guard.base import GuardContext, RiskState
from defiagent.guard.guard import Guard
from defiagent.market.models import MarketSnapshot, PortfolioSnapshot
from defiagent.monitoring.events import LimitUsage, RiskEvent
from defiagent.risk.base import PausingRule, RiskRule
from defiagent.risk.exits import ExitRule
from defiagent.risk.max_gas import MaxGasPerDay
from defiagent.risk.max_trades import MaxTradesPerWindow
from defiagent.risk.positions import Position
from defiagent.risk.trades import TradeLedger
from defiagent.strategy.intents import SwapExactIn

R = TypeVar("R")

DAY = 86_400.0


@dataclass
class StrategyRisk:
    """One strategy's rules, as configured for it ([risk] plus its own overrides)."""

    guard: Guard
    exits: list[ExitRule] = field(default_factory=list)

    def rule(self, cls: type[R]) -> R | None:
        return next((r for r in self.guard.rules if isinstance(r, cls)), None)

    @property
    def pausing(self) -> list[PausingRule]:
        return [r for r in self.guard.rules if isinstance(r, PausingRule)]

    @property
    def trade_window(self) -> float:
        rule = self.rule(MaxTradesPerWindow)
        return rule.config.window_seconds if rule else 3_600.0

    @property
    def gas_window(self) -> float:
        rule = self.rule(MaxGasPerDay)
        return rule.config.window_hours * 3_600 if rule else DAY


@dataclass(frozen=True)
class PlannedExit:
    strategy: str
    rule: str  # "stop-loss" / "take-profit"
    reason: str
    intent: SwapExactIn


class RiskDesk:
    def __init__(self, strategies: Mapping[str, StrategyRisk], ledger: TradeLedger) -> None:
        self.strategies = dict(strategies)
        self.ledger = ledger

    # --- the strategy's view of the risk state -------------------------------------------

    def context_for(self, strategy: str, ctx: GuardContext) -> GuardContext:
        """`ctx` with the strategy's own figures: exposure, trades, losses, gas."""
        sr = self.strategies[strategy]
        now = float(ctx.now)
        streak, last_loss = self.ledger.book.losing_streak(strategy)
        risk = dataclasses.replace(
            ctx.risk,
            strategy_exposure=self.ledger.book.exposure(strategy, ctx.prices),
            trades_in_window=self.ledger.count(strategy, now, sr.trade_window),
            consecutive_losses=streak,
            last_loss_at=last_loss,
            gas_spent_wei=self.ledger.gas_wei(now, sr.gas_window),
        )
        return dataclasses.replace(ctx, strategy=strategy, risk=risk)

    def pauses(self, strategy: str, ctx: GuardContext) -> list[tuple[str, str]]:
        """(rule id, reason) of each pausing limit that holds the strategy now."""
        out = []
        for rule in self.strategies[strategy].pausing:
            reason = rule.pause_reason(ctx)
            if reason:
                out.append((rule.id, reason))
        return out

    def usage(self, strategy: str, ctx: GuardContext) -> list[LimitUsage]:
        rules = self.strategies[strategy].guard.rules
        return [u for r in rules if isinstance(r, RiskRule) and (u := r.usage(ctx)) is not None]

    # --- exits -------------------------------------------------------------------------

    def exits(
        self,
        strategy: str,
        market: MarketSnapshot,
        portfolio: PortfolioSnapshot,
        prices: dict[str, float],
    ) -> list[PlannedExit]:
        """The positions of `strategy` an exit rule wants closed, as sell intents."""
        out = []
        for position in self.ledger.book.of(strategy):
            price = prices.get(position.token)
            for rule in self.strategies[strategy].exits:
                reason = rule.exit_reason(position, price)
                if reason is None:
                    continue
                intent = self._sell(position, market, portfolio, rule, reason)
                if intent is not None:
                    out.append(PlannedExit(strategy, rule.id, reason, intent))
                break  # one exit per position per tick
        return out

    @staticmethod
    def _sell(
        position: Position,
        market: MarketSnapshot,
        portfolio: PortfolioSnapshot,
        rule: ExitRule,
        reason: str,
    ) -> SwapExactIn | None:
        numeraire = market.numeraire
        amount = min(position.amount, portfolio.balance(position.token))
        pool = next(
            (p for p in market.pools if p.has(position.token) and numeraire and p.has(numeraire)),
            None,
        )
        if amount <= 0 or pool is None or numeraire is None:
            return None
        quoted = pool.amount_out(position.token, amount)
        slippage = getattr(rule.config, "max_slippage_bps", 100)
        return SwapExactIn(
            token_in=position.token,
            token_out=numeraire,
            amount_in=amount,
            min_amount_out=int(quoted * (10_000 - slippage) // 10_000),
            reason=reason,
        )

    # --- the tick's picture ---------------------------------------------------------------

    def event(
        self,
        tick: int,
        ctx: GuardContext,
        market: MarketSnapshot,
        paused: dict[str, str],
        first_value: float | None,
        limits: list[LimitUsage],
    ) -> RiskEvent:
        risk: RiskState = ctx.risk
        symbols = {a: t.symbol for a, t in market.tokens.items()}
        return RiskEvent(
            at=float(ctx.now),
            tick=tick,
            portfolio_value=risk.value_now,
            pnl=None
            if risk.value_now is None or first_value is None
            else risk.value_now - first_value,
            drawdown_pct=risk.drawdown_pct,
            loss_pct_in_window=risk.loss_pct_in_window,
            exposure={symbols.get(a, a): v for a, v in risk.position_values.items()},
            strategy_exposure={
                name: self.ledger.book.exposure(name, ctx.prices) for name in self.strategies
            },
            gas_spent_wei_in_window=self.ledger.gas_wei(float(ctx.now), DAY),
            limits=limits,
            paused=paused,
        )
