"""The agent <-> strategy wire protocol, version 1 (docs/strategy-protocol.md).

JSON lines over the child's stdin (agent -> strategy) and stdout (strategy -> agent):

    agent: hello  {protocol, strategy, params, intent_kinds, secrets, limits}
    strat: ready  {protocol, description}
    agent: tick   {tick, market, portfolio, positions, headroom}   (every tick)
    strat: intents {tick, intents, notes}  or  error {message}
    agent: stop

Everything the strategy sends is parsed by the strict models below (unknown fields refused,
sizes capped); each intent is then parsed on its own with `defiagent.strategy.intents`, so
one malformed intent is refused without voiding the others.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

PROTOCOL_VERSION = 1
MAX_NOTES = 20
MAX_NOTE_CHARS = 500


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- agent -> strategy ---------------------------------------------------------------


class Hello(_Message):
    type: Literal["hello"] = "hello"
    protocol: int = PROTOCOL_VERSION
    strategy: str  # the name the operator gave it (it cannot choose another)
    params: dict[str, Any] = {}
    intent_kinds: list[str] = []  # what the guard may allow at all
    secrets: dict[str, str] = Field(default_factory=dict, repr=False)  # its own API keys
    limits: dict[str, Any] = {}  # its tick timeout, max intents, max answer size


class PositionView(_Message):
    token: str
    amount: str  # smallest units, as a decimal string (JSON numbers lose precision)
    cost: float | None
    opened_at: float


class HeadroomView(_Message):
    rule: str
    used: float
    limit: float


class Tick(_Message):
    type: Literal["tick"] = "tick"
    tick: int
    market: dict[str, Any]  # MarketSnapshot as JSON (a copy: the agent keeps its own)
    portfolio: dict[str, Any]  # PortfolioSnapshot as JSON
    positions: list[PositionView] = []
    headroom: list[HeadroomView] = []


class Stop(_Message):
    type: Literal["stop"] = "stop"


# --- strategy -> agent ---------------------------------------------------------------


class Ready(_Message):
    type: Literal["ready"]
    protocol: int
    description: str = Field(default="", max_length=500)


class Intents(_Message):
    type: Literal["intents"]
    tick: int
    # Each item is parsed on its own as an intent; the list is capped by the host first.
    intents: list[Any] = []
    notes: list[str] = Field(default=[], max_length=MAX_NOTES)


class StrategyError(_Message):
    type: Literal["error"]
    message: str = Field(default="", max_length=MAX_NOTE_CHARS)


Answer = Intents | StrategyError


def to_wire(value: Any) -> Any:
    """JSON-ready `value` with integers past 2**53 as decimal strings: JSON readers in other
    languages lose precision beyond that, and the models on both sides read them back."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and abs(value) >= 2**53:
        return str(value)
    if isinstance(value, dict):
        return {k: to_wire(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_wire(v) for v in value]
    return value
