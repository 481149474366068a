"""The Python SDK for strategies: subclass `Strategy`, end the file with `run(MyStrategy)`.

    from defiagent.strategy.sdk import Strategy, StrategyParams, SwapExactIn, run

    class Params(StrategyParams):
        base: str
        quote: str

    class Mine(Strategy):
        Params = Params

        def propose(self, market, portfolio):
            return []          # intents: SwapExactIn(...), Approve(...), ... or plain dicts

    if __name__ == "__main__":
        run(Mine)

The agent runs that file in its own sandboxed process and speaks the JSON-lines protocol of
docs/strategy-protocol.md with it; `run` does the protocol side. `propose` gets a fresh copy
of the market and portfolio each tick (as the same pydantic models the agent uses, so
`market.quote_out(...)` and `portfolio.balance(...)` work) and `self.tick` with the tick
number, its open positions and its limits' headroom. Anything printed goes to stderr (the
agent keeps the last lines for diagnosis); stdout is the protocol's.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import IO, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from defiagent.market.models import MarketSnapshot, PortfolioSnapshot
from defiagent.strategy.intents import (
    AddLiquidity,
    Approve,
    RawCall,
    RemoveLiquidity,
    SwapExactIn,
    SwapExactOut,
    Unwrap,
    Wrap,
)
from defiagent.strategy.protocol import (
    MAX_NOTE_CHARS,
    MAX_NOTES,
    PROTOCOL_VERSION,
    Hello,
    PositionView,
    Tick,
    to_wire,
)

__all__ = [
    "AddLiquidity",
    "Approve",
    "MarketSnapshot",
    "PortfolioSnapshot",
    "RawCall",
    "RemoveLiquidity",
    "Strategy",
    "StrategyParams",
    "SwapExactIn",
    "SwapExactOut",
    "TickView",
    "Unwrap",
    "Wrap",
    "run",
]


class StrategyParams(BaseModel):
    """Base for a strategy's parameters (`params` in its config): unknown keys refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass
class TickView:
    """What comes with each tick besides the snapshots."""

    number: int = 0
    positions: list[PositionView] = field(default_factory=list)
    headroom: dict[str, float] = field(default_factory=dict)  # rule -> limit - used


class Strategy:
    """Untrusted by design: whatever `propose` returns goes through the agent's guard."""

    Params: ClassVar[type[BaseModel]] = StrategyParams

    def __init__(self, params: Any) -> None:
        self.p = params
        self.name = ""  # the name the operator gave it (set by `run`)
        self.secrets: dict[str, str] = {}  # its own API keys, from the hello
        self.tick = TickView()
        self._notes: list[str] = []

    def describe(self) -> str:
        return type(self).__name__

    def start(self) -> None:
        """Called once `name` and `secrets` are set, before `ready`: open clients here so
        that the first tick's time budget is not spent on them."""

    def propose(self, market: MarketSnapshot, portfolio: PortfolioSnapshot) -> list[Any]:
        raise NotImplementedError

    def note(self, text: str) -> None:
        """A line for the agent's audit log with this tick's answer (bounded)."""
        if len(self._notes) < MAX_NOTES:
            self._notes.append(str(text)[:MAX_NOTE_CHARS])


def _intent_json(item: Any) -> Any:
    if isinstance(item, BaseModel):
        return item.model_dump(mode="json")
    return item


class _Wire:
    def __init__(self, reader: IO[bytes], writer: IO[bytes]) -> None:
        self.reader, self.writer = reader, writer

    def read(self) -> dict[str, Any] | None:
        line = self.reader.readline()
        if not line:
            return None
        return json.loads(line)

    def send(self, message: dict[str, Any]) -> None:
        data = json.dumps(to_wire(message), separators=(",", ":"))
        self.writer.write(data.encode() + b"\n")
        self.writer.flush()


def _protocol_streams() -> tuple[IO[bytes], IO[bytes]]:
    """stdin for messages in; a private copy of stdout for messages out, with fd 1 (and
    sys.stdout) pointed at stderr so that a stray print cannot corrupt the protocol."""
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return sys.stdin.buffer, out


def serve(strategy_cls: type[Strategy], wire: _Wire) -> int:
    first = wire.read()
    if first is None:
        return 0
    hello = Hello.model_validate(first)
    try:
        strategy = strategy_cls(strategy_cls.Params.model_validate(hello.params))
    except Exception as exc:  # bad params are the operator's to fix: say so, then end
        wire.send({"type": "error", "message": f"params: {exc}"[:MAX_NOTE_CHARS]})
        return 2
    strategy.name = hello.strategy
    strategy._wire = wire  # type: ignore[attr-defined]  # the test rogue writes garbage here
    strategy.secrets = dict(hello.secrets)
    try:
        strategy.start()
    except Exception as exc:
        wire.send({"type": "error", "message": f"start: {type(exc).__name__}: {exc}"[:500]})
        return 2
    wire.send(
        {"type": "ready", "protocol": PROTOCOL_VERSION, "description": strategy.describe()[:500]}
    )
    while (message := wire.read()) is not None:
        if message.get("type") == "stop":
            return 0
        tick = Tick.model_validate(message)
        strategy.tick = TickView(
            number=tick.tick,
            positions=list(tick.positions),
            headroom={h.rule: h.limit - h.used for h in tick.headroom},
        )
        strategy._notes = []
        try:
            market = MarketSnapshot.model_validate(tick.market)
            portfolio = PortfolioSnapshot.model_validate(tick.portfolio)
            proposed: Iterable[Any] = strategy.propose(market, portfolio) or []
            intents = [_intent_json(i) for i in proposed]
        except Exception as exc:  # report, keep serving: the agent decides what it means
            wire.send({"type": "error", "message": f"{type(exc).__name__}: {exc}"[:500]})
            continue
        wire.send(
            {"type": "intents", "tick": tick.tick, "intents": intents, "notes": strategy._notes}
        )
    return 0


def run(strategy_cls: type[Strategy]) -> None:
    """The entry point of an SDK strategy file: serve the agent until it says stop."""
    reader, writer = _protocol_streams()
    sys.exit(serve(strategy_cls, _Wire(reader, writer)))
