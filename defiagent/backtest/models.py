"""What a backtest returns: the equity curve, its returns, the trades, every decision, and
the figures. These cross the boundary to the gates, the sweeps, the certificate and JSON."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BacktestMetrics(_Model):
    """Figures over the replayed ticks. Ratios are per tick (not annualised): `sharpe` is
    mean(returns) / stdev(returns), `sortino` divides by the downside deviation."""

    sharpe: float = 0.0
    sortino: float = 0.0
    max_drawdown: float = Field(default=0.0, description="largest peak-to-trough fall, 0..1")
    turnover: float = Field(default=0.0, description="traded value / mean equity")
    win_rate: float = Field(default=0.0, description="closing trades with a positive PnL, 0..1")
    exposure: float = Field(default=0.0, description="mean share of equity not in numeraire")
    total_return: float = 0.0
    n_ticks: int = 0
    n_trades: int = 0
    n_refused: int = 0
    gas_cost: float = Field(default=0.0, description="gas paid, in the numeraire")


class BacktestTrade(_Model):
    """One executed intent, filled by exact Uniswap V2 math on the tick's reserves."""

    tick: int  # index into the replayed ticks
    block: int
    timestamp: int
    strategy: str
    kind: str
    token_in: str
    token_out: str
    amount_in: int
    amount_out: int
    value_in: float | None = None  # numeraire
    value_out: float | None = None
    gas_used: int = 0
    gas_cost: float = 0.0  # numeraire
    slippage_bps: float | None = None  # fill vs the tick's spot, fee and impact included
    realized_pnl: float | None = None
    portfolio_value: float | None = None  # numeraire, just before the trade
    exit_rule: str | None = None  # stop-loss / take-profit when the agent closed it
    reason: str = ""


class TickDecision(_Model):
    """What the strategy emitted at one tick (before the guard), and what became of it."""

    tick: int
    block: int
    intents: list[Any] = []  # the strategy's raw intents, as JSON, without their ids
    executed: int = 0
    refused: list[str] = []  # "rule: reason" for each refusal
    error: str | None = None  # the strategy failed this tick, or was paused
    notes: list[str] = []  # what the strategy said about this tick (its own words)


class BacktestResult(_Model):
    strategy: str
    params: dict[str, Any] = {}
    start_block: int = 0
    end_block: int = 0
    start_time: int = 0
    end_time: int = 0
    data_hash: str = ""  # MarketHistory.content_hash of the data replayed
    warmup: int = 0
    # equity[k]: the portfolio's value in the numeraire at the end of the k-th measured
    # tick that could be valued (ticks before the first sane price are left out; a later
    # unpriced tick repeats the last value); timestamps[k] is that tick's block time.
    equity: list[float] = []
    timestamps: list[int] = []
    returns: list[float] = []  # returns[k] = equity[k + 1] / equity[k] - 1 (len(equity) - 1)
    trades: list[BacktestTrade] = []
    decisions: list[TickDecision] = []  # one per measured tick, in order
    metrics: BacktestMetrics = BacktestMetrics()
    engine_seconds: float = 0.0  # wall time of the replay
    strategy_seconds: float = 0.0  # of which waiting for the strategy's answers
    engine_cpu_seconds: float = 0.0  # CPU time of this process during the replay
    strategy_cpu_seconds: float = 0.0  # of which inside the strategy port (in-process only)
