"""Payloads of the audit-log records that reports and drift checks read back.

The agent writes them (kind "trade" once per executed intent that moved assets, kind
"risk" once per tick); `defiagent report` and the drift monitor read them. Amounts are
integers in smallest units; values are floats in the numeraire (None when unpriced).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

TRADE = "trade"
RISK = "risk"


class TradeEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    at: float  # unix seconds (agent clock)
    strategy: str
    intent_id: str
    kind: str  # the intent kind, e.g. "swap-exact-in"
    pin: str = ""  # the strategy's pin id: which code and params made this trade
    exit_reason: str | None = None  # "stop-loss" / "take-profit" when the agent closed it
    token_in: str | None = None
    token_out: str | None = None
    amount_in: int = 0  # what left the agent (smallest units; from on-chain balances)
    amount_out: int = 0  # what arrived
    value_in: float | None = None  # numeraire value of what left, at sane prices
    value_out: float | None = None  # numeraire value of what arrived
    quoted_out: int | None = None  # what the pool quoted before the trade (for slippage)
    slippage_bps: float | None = None  # (quoted - received) / quoted, in bps
    gas_used: int = 0
    gas_cost_wei: int = 0
    gas_cost_value: float | None = None
    realized_pnl: float | None = None  # set when the trade reduced a position
    portfolio_value: float | None = None  # before the trade
    tx_hashes: list[str] = Field(default_factory=list)


class LimitUsage(BaseModel):
    model_config = ConfigDict(frozen=True)

    rule: str
    used: float
    limit: float

    @property
    def ratio(self) -> float:
        return self.used / self.limit if self.limit else 0.0


class RiskEvent(BaseModel):
    """The risk picture at one tick: what the limits were measured against."""

    model_config = ConfigDict(frozen=True)

    at: float
    tick: int
    portfolio_value: float | None = None
    pnl: float | None = None  # vs the first recorded value
    drawdown_pct: float | None = None
    loss_pct_in_window: float | None = None
    exposure: dict[str, float] = Field(default_factory=dict)  # asset symbol -> value
    strategy_exposure: dict[str, float] = Field(default_factory=dict)  # strategy -> value
    gas_spent_wei_in_window: int = 0
    limits: list[LimitUsage] = Field(default_factory=list)
    paused: dict[str, str] = Field(default_factory=dict)  # strategy -> why
