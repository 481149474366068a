"""The agent's ledger of executed intents: trade counts, gas paid, and the position book.

Kept as JSON lines in the state dir (one TradeEvent per line, fsync'd), so a restart
resets neither a trade-count window, nor a gas budget, nor a stop-loss.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from defiagent.agent.state import append_line, damaged_line, state_lines
from defiagent.monitoring.events import TradeEvent
from defiagent.risk.positions import PositionBook


def moved_assets(trade: TradeEvent) -> bool:
    """A trade in the counting sense: something left and something arrived."""
    return trade.amount_in > 0 and trade.amount_out > 0


class TradeLedger:
    def __init__(self, path: Path | None = None, *, numeraire: str | None = None) -> None:
        self.path = path
        self.trades: list[TradeEvent] = []
        self.book = PositionBook(numeraire)
        for trade in self._load():
            self.trades.append(trade)
            self.book.apply(trade)

    def _load(self) -> list[TradeEvent]:
        if self.path is None or not self.path.is_file():
            return []
        out = []
        for number, line in state_lines(self.path, "trade"):
            try:
                out.append(TradeEvent.model_validate_json(line))
            except ValidationError as exc:
                # Never skipped, not even a torn last line: a forgotten trade would reset a
                # trade count, a gas budget or a stop-loss's entry price.
                why = exc.errors()[0]["msg"]
                raise damaged_line(self.path, number, "trade", why) from None
        return out

    def add(self, trade: TradeEvent) -> TradeEvent:
        """Record an executed intent; returns it with its realized PnL filled in."""
        realized = self.book.apply(trade)
        trade = trade.model_copy(update={"realized_pnl": realized})
        self.trades.append(trade)
        if self.path is not None:
            append_line(self.path, json.dumps(trade.model_dump(mode="json")))
        return trade

    def count(self, strategy: str, now: float, window: float) -> int:
        return sum(
            1
            for t in self.trades
            if t.strategy == strategy and now - t.at < window and moved_assets(t)
        )

    def gas_wei(self, now: float, window: float) -> int:
        return sum(t.gas_cost_wei for t in self.trades if now - t.at < window)
