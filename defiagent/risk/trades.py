"""The agent's ledger of executed intents: trade counts, gas paid, and the position book.

Kept as JSON lines in the state dir (one TradeEvent per line, fsync'd), so a restart
resets neither a trade-count window, nor a gas budget, nor a stop-loss.

Limits read the ledger once per strategy per tick and once per intent, so those reads go
through time indexes (binary search plus running totals), never a scan of every trade: a
long-lived agent with years of trades decides as fast as a new one.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_left, bisect_right
from pathlib import Path

from pydantic import ValidationError

from defiagent.agent.state import append_line, damaged_line, state_lines
from defiagent.monitoring.events import TradeEvent
from defiagent.risk.positions import PositionBook


def moved_assets(trade: TradeEvent) -> bool:
    """A trade in the counting sense: something left and something arrived."""
    return trade.amount_in > 0 and trade.amount_out > 0


class TimeIndex:
    """Times kept in order, with a running total of an integer weight per time.

    `window(now, seconds)` answers how many times (and how much weight) a trailing window
    holds in O(log n). It counts exactly what the scan `now - at < seconds` counts, using
    that same comparison inside the binary search (it only ever flips once along sorted
    times), so float rounding cannot make the two disagree.
    """

    def __init__(self) -> None:
        self._at: list[float] = []
        self._total: list[int] = [0]  # _total[i]: weight of the first i times

    def __len__(self) -> int:
        return len(self._at)

    def add(self, at: float, weight: int = 1) -> None:
        if math.isnan(at):
            return  # `now - nan < seconds` is never true: such a time is in no window
        i = bisect_right(self._at, at)
        self._at.insert(i, at)
        if i == len(self._at) - 1:  # the usual case: a newer time than any before
            self._total.append(self._total[-1] + weight)
            return
        # A clock that stepped back: totals after the insertion point move up (rare, O(n)).
        self._total.insert(i + 1, self._total[i] + weight)
        for j in range(i + 2, len(self._total)):
            self._total[j] += weight

    def first_within(self, now: float, seconds: float) -> int:
        return bisect_left(self._at, True, key=lambda at: now - at < seconds)

    def window(self, now: float, seconds: float) -> tuple[int, int]:
        """(times, summed weight) with `now - at < seconds`."""
        i = self.first_within(now, seconds)
        return len(self._at) - i, self._total[-1] - self._total[i]


class TradeLedger:
    def __init__(self, path: Path | None = None, *, numeraire: str | None = None) -> None:
        self.path = path
        self.trades: list[TradeEvent] = []
        self.book = PositionBook(numeraire)
        self._moved: dict[str, TimeIndex] = {}  # strategy -> its trades that moved assets
        self._gas = TimeIndex()  # every trade, weighted by the gas it paid
        for trade in self._load():
            self.book.apply(trade)
            self._keep(trade)

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

    def _keep(self, trade: TradeEvent) -> None:
        self.trades.append(trade)
        if moved_assets(trade):
            self._moved.setdefault(trade.strategy, TimeIndex()).add(trade.at)
        self._gas.add(trade.at, trade.gas_cost_wei)

    def add(self, trade: TradeEvent) -> TradeEvent:
        """Record an executed intent; returns it with its realized PnL filled in."""
        realized = self.book.apply(trade)
        trade = trade.model_copy(update={"realized_pnl": realized})
        self._keep(trade)
        if self.path is not None:
            append_line(self.path, json.dumps(trade.model_dump(mode="json")))
        return trade

    def count(self, strategy: str, now: float, window: float) -> int:
        """Trades of `strategy` that moved assets with `now - at < window`."""
        index = self._moved.get(strategy)
        return index.window(now, window)[0] if index else 0

    def gas_wei(self, now: float, window: float) -> int:
        """Gas paid by every trade with `now - at < window`, in wei."""
        return self._gas.window(now, window)[1]
