"""Positions per strategy, folded from the agent's executed trades.

A position is what one strategy bought of one asset and still holds, with what it paid
(in the numeraire, at the sane prices of the moment). Selling reduces it at average cost,
and the difference is the realized PnL of that close. The book is rebuilt from the trade
ledger at start, so stop-losses, cooldowns and capital shares survive a restart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from defiagent.monitoring.events import TradeEvent


@dataclass
class Position:
    strategy: str
    token: str
    amount: int  # smallest units
    cost: float | None  # numeraire paid for `amount`; None if it could not be valued
    opened_at: float

    def value(self, price: float | None) -> float | None:
        return None if price is None else self.amount * price

    def pnl_pct(self, price: float | None) -> float | None:
        value = self.value(price)
        if value is None or not self.cost:
            return None
        return (value - self.cost) / self.cost * 100


@dataclass
class PositionBook:
    numeraire: str | None
    positions: dict[tuple[str, str], Position] = field(default_factory=dict)
    closes: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # (at, pnl)
    # strategy -> (losing closes in a row, when the latest closed): kept as closes come in,
    # so reading it costs the same after a thousand losses as after one.
    streaks: dict[str, tuple[int, float | None]] = field(default_factory=dict)

    def apply(self, trade: TradeEvent) -> float | None:
        """Fold one trade in; return the realized PnL if it reduced a position."""
        realized = None
        if trade.token_in and trade.amount_in > 0 and trade.token_in != self.numeraire:
            realized = self._reduce(trade)
        if trade.token_out and trade.amount_out > 0 and trade.token_out != self.numeraire:
            key = (trade.strategy, trade.token_out)
            pos = self.positions.get(key)
            paid = trade.value_in if trade.value_in is not None else trade.value_out
            if pos is None:
                self.positions[key] = Position(
                    trade.strategy, trade.token_out, trade.amount_out, paid, trade.at
                )
            else:
                pos.amount += trade.amount_out
                pos.cost = None if pos.cost is None or paid is None else pos.cost + paid
        if realized is not None:
            self.closes.setdefault(trade.strategy, []).append((trade.at, realized))
            streak, _ = self.streaks.get(trade.strategy, (0, None))
            self.streaks[trade.strategy] = (0, None) if realized >= 0 else (streak + 1, trade.at)
        return realized

    def _reduce(self, trade: TradeEvent) -> float | None:
        pos = self.positions.get((trade.strategy, trade.token_in or ""))
        if pos is None or pos.amount <= 0:
            return None  # selling what the strategy did not buy (the agent's own holdings)
        sold = min(trade.amount_in, pos.amount)
        fraction = sold / pos.amount
        cost_part = None if pos.cost is None else pos.cost * fraction
        # Only the part of the proceeds that matches the position's share of what was sold.
        proceeds = None if trade.value_out is None else trade.value_out * sold / trade.amount_in
        pos.amount -= sold
        if pos.cost is not None and cost_part is not None:
            pos.cost -= cost_part
        if pos.amount == 0:
            del self.positions[(pos.strategy, pos.token)]
        if cost_part is None or proceeds is None:
            return None
        return proceeds - cost_part

    def of(self, strategy: str) -> list[Position]:
        return [p for (s, _), p in self.positions.items() if s == strategy]

    def exposure(self, strategy: str, prices: dict[str, float]) -> float:
        return sum(p.value(prices.get(p.token)) or 0.0 for p in self.of(strategy))

    def losing_streak(self, strategy: str) -> tuple[int, float | None]:
        """(losing closes in a row, latest first; when the latest of them closed)."""
        return self.streaks.get(strategy, (0, None))
