"""The backtest runs the live pipeline's own rules: guard refusals, risk limits, the agent's
own exits, fills that revert as the router would, gas paid; and its figures are right.

A synthetic market (no chain) and in-process strategies keep these fast."""

from __future__ import annotations

import math

import pytest

from defiagent.backtest.engine import BACKTEST_AGENT, compute_metrics, run_backtest
from defiagent.backtest.models import BacktestTrade
from defiagent.backtest.synthetic import (
    DTKN,
    DUSD,
    UNIT,
    synthetic_allowlist,
    synthetic_config,
    synthetic_history,
)
from defiagent.errors import ConfigError
from defiagent.strategy.builtin.mean_reversion import MeanReversion, MeanReversionParams
from defiagent.strategy.in_process import InProcessStrategy
from defiagent.strategy.intents import SwapExactIn

ALLOWLIST = synthetic_allowlist()
STRANGER = "0x000000000000000000000000000000000000dEaD"


class Scripted:
    """Proposes `plan[tick]` (a function of the market and portfolio -> intents) at that
    tick of the synthetic history (whose block numbers start at 100)."""

    name = "mean-reversion"

    def __init__(self, plan):
        self.plan = plan

    def propose(self, market, portfolio):
        make = self.plan.get(market.block_number - 100)
        return make(market, portfolio) if make else []


def at(result, tick):
    return next(d for d in result.decisions if d.tick == tick)


def buy(amount_dusd: int, *, recipient: str | None = None, min_out_factor: float = 0.995):
    def make(market, portfolio):
        quoted = market.quote_out([DUSD, DTKN], amount_dusd * UNIT)
        return [
            SwapExactIn(
                token_in=DUSD,
                token_out=DTKN,
                amount_in=amount_dusd * UNIT,
                min_amount_out=int(quoted * min_out_factor),
                recipient=recipient,
                reason="scripted buy",
            )
        ]

    return make


def _run(tmp_path, strategy, *, prices=None, ticks=120, **config):
    cfg = synthetic_config(tmp_path, **config)
    history = synthetic_history(ticks, prices=prices)
    return run_backtest(
        cfg, history, allowlist=ALLOWLIST, port=InProcessStrategy(strategy, name="mean-reversion")
    )


def test_a_plain_buy_is_filled_with_fee_impact_and_gas(tmp_path):
    result = _run(tmp_path, Scripted({10: buy(500)}))
    (trade,) = result.trades
    assert trade.token_in == DUSD
    assert trade.token_out == DTKN
    assert trade.amount_in == 500 * UNIT
    # What arrived is the pool's exact quote (fee and impact included): less than its value.
    assert trade.value_out < trade.value_in
    assert trade.gas_used > 0
    assert trade.gas_cost > 0
    assert at(result, 10).executed == 1


def test_the_guard_refuses_what_it_refuses_live(tmp_path):
    # A swap paying a stranger: recipient-is-self, as in the live pipeline.
    result = _run(tmp_path, Scripted({10: buy(100, recipient=STRANGER)}))
    assert not result.trades
    (refusal,) = at(result, 10).refused
    assert refusal.startswith("recipient-is-self:")
    # Above the per-transaction cap of [guard.per_tx_value_cap], and just under it.
    cap = {"per_tx_value_cap": {"max_value": 300}}
    big = _run(tmp_path, Scripted({10: buy(301)}), guard=cap)
    assert not big.trades
    assert at(big, 10).refused[0].startswith("value-cap-per-tx:")
    ok = _run(tmp_path, Scripted({10: buy(299)}), guard=cap)
    assert len(ok.trades) == 1
    # An approval above [guard.approval_bounded]'s cap (1,000 by default).
    wide = _run(tmp_path, Scripted({10: buy(1_001)}))
    assert at(wide, 10).refused[0].startswith("approval-bounded:")


def test_a_fill_that_would_revert_is_refused_and_costs_nothing(tmp_path):
    # min-out above the pool's quote: the router reverts, the simulation refuses it.
    result = _run(tmp_path, Scripted({10: buy(100, min_out_factor=1.01)}))
    assert not result.trades
    assert "INSUFFICIENT_OUTPUT_AMOUNT" in at(result, 10).refused[0]
    idle = _run(tmp_path, Scripted({}))
    assert result.equity == idle.equity  # nothing moved, no gas paid

    def too_much(market, portfolio):  # more DUSD than the agent holds
        return [
            *buy(1000)(market, portfolio)[:0],
            SwapExactIn(token_in=DUSD, token_out=DTKN, amount_in=25000 * UNIT, min_amount_out=1),
        ]

    broke = _run(tmp_path, Scripted({10: too_much}))
    assert not broke.trades
    assert at(broke, 10).refused


def test_the_agent_closes_a_losing_position_itself(tmp_path):
    # Buy at 0.5, then DTKN falls 1% a tick: the stop-loss sells it into DUSD.
    prices = [0.5] * 20 + [0.5 * 0.99**k for k in range(1, 101)]
    result = _run(
        tmp_path,
        Scripted({10: buy(500)}),
        prices=prices,
        risk={"stop_loss": {"stop_loss_pct": 5, "max_slippage_bps": 100}},
        # A short TWAP window, so the reference follows a steady fall and the position
        # stays priced (with an hour's window the price check would refuse the pool).
        market={
            "numeraire": DUSD,
            "twap_min_window_seconds": 12,
            "twap_max_window_seconds": 36,
            "max_deviation_bps": 300,
        },
    )
    exits = [t for t in result.trades if t.exit_rule == "stop-loss"]
    assert len(exits) == 1
    (exit_trade,) = exits
    assert exit_trade.token_in == DTKN
    assert exit_trade.token_out == DUSD
    assert exit_trade.realized_pnl is not None
    assert exit_trade.realized_pnl < 0
    # Not before the loss reached 5%: the price had fallen at least that far.
    bought = result.trades[0]
    assert bought.tick == 10
    assert prices[exit_trade.tick] <= 0.5 * 0.95


def test_a_pausing_limit_holds_the_strategy(tmp_path):
    params = {"window": 2, "threshold_bps": 1}  # wants to trade every tick
    cfg = synthetic_config(tmp_path, params=params, risk={"max_trades": {"max_trades": 3}})
    sc = cfg.strategies[0]
    strategy = MeanReversion(MeanReversionParams(**sc.params))
    result = run_backtest(
        cfg,
        synthetic_history(60),
        allowlist=ALLOWLIST,
        port=InProcessStrategy(strategy, name=sc.name),
    )
    assert len(result.trades) == 3
    assert any((d.error or "").startswith("paused:") for d in result.decisions)


def test_sandboxed_and_in_process_replays_agree(tmp_path):
    """The same strategy through its bwrap sandbox (as run starts it) and in process."""
    cfg = synthetic_config(tmp_path)
    history = synthetic_history(150, seed=5)
    sandboxed = run_backtest(cfg, history, allowlist=ALLOWLIST)
    sc = cfg.strategies[0]
    in_process = run_backtest(
        cfg,
        history,
        allowlist=ALLOWLIST,
        port=InProcessStrategy(MeanReversion(MeanReversionParams(**sc.params)), name=sc.name),
    )
    assert sandboxed.metrics == in_process.metrics
    assert sandboxed.trades == in_process.trades
    assert [d.intents for d in sandboxed.decisions] == [d.intents for d in in_process.decisions]


def test_bad_ranges_and_configs_are_one_sentence(tmp_path):
    cfg = synthetic_config(tmp_path)
    history = synthetic_history(30)
    port = InProcessStrategy(Scripted({}), name="mean-reversion")
    for start, end in ((10, 10), (-1, 5), (0, 31)):
        with pytest.raises(ConfigError, match="tick range"):
            run_backtest(cfg, history, allowlist=ALLOWLIST, port=port, start=start, end=end)
    with pytest.raises(ConfigError, match="no strategy named 'nope'"):
        run_backtest(cfg, history, allowlist=ALLOWLIST, port=port, strategy="nope")
    other_chain = synthetic_config(tmp_path, chain_id=1)
    with pytest.raises(ConfigError, match="from chain 31337"):
        run_backtest(other_chain, history, allowlist=ALLOWLIST, port=port)
    with pytest.raises(ConfigError, match="start_balances"):
        run_backtest(
            synthetic_config(tmp_path, backtest={"start_balances": {STRANGER: 5}}),
            history,
            allowlist=ALLOWLIST,
            port=port,
        )


def test_the_agent_address_is_nobodys():
    assert BACKTEST_AGENT == "0x00000000000000000000000000000000000BAc7e"


def _trade(pnl: float | None, value: float = 100.0) -> BacktestTrade:
    return BacktestTrade(
        tick=0, block=1, timestamp=0, strategy="s", kind="swap-exact-in", token_in="a",
        token_out="b", amount_in=1, amount_out=1, value_in=value, realized_pnl=pnl,
    )  # fmt: skip


def test_metrics_on_known_series():
    equity = [100.0, 110.0, 99.0, 108.9]
    returns = [0.1, -0.1, 0.1]
    m = compute_metrics(
        equity, returns, [_trade(None), _trade(5.0), _trade(-1.0), _trade(2.0)], [0.5, 0.25],
        n_ticks=4,
    )  # fmt: skip
    mean = 0.1 / 3
    sd = math.sqrt(((0.1 - mean) ** 2 * 2 + (-0.1 - mean) ** 2) / 2)
    assert m.sharpe == pytest.approx(mean / sd)
    assert m.sortino == pytest.approx(mean / math.sqrt(0.01 / 3))
    assert m.max_drawdown == pytest.approx(0.1)  # 110 -> 99
    assert m.win_rate == pytest.approx(2 / 3)  # closing trades only
    assert m.turnover == pytest.approx(400 / (sum(equity) / 4))
    assert m.exposure == pytest.approx(0.375)
    assert m.total_return == pytest.approx(0.089)
    flat = compute_metrics([100.0, 100.0], [0.0], [], [], n_ticks=2)
    assert (flat.sharpe, flat.sortino, flat.max_drawdown, flat.win_rate) == (0, 0, 0, 0)


def test_the_strategy_is_sent_what_the_live_loop_sends(tmp_path):
    """The tick message is built by hand for speed: it must be the live loop's JSON."""
    from defiagent.backtest.engine import BacktestEngine
    from defiagent.strategy.protocol import Tick, to_wire

    cfg = synthetic_config(tmp_path)
    engine = BacktestEngine(cfg, synthetic_history(30), cfg.strategies[0], allowlist=ALLOWLIST)
    engine._moved = {}
    market, portfolio, ctx, _, _ = engine._observe(20)
    tick = engine._tick(20, market, portfolio, ctx)
    assert tick.market == to_wire(market.model_dump(mode="json"))
    assert Tick.model_validate(tick.model_dump(mode="json")) == tick


def test_warm_up_changes_nothing_but_what_the_strategy_remembers(tmp_path):
    """Warm-up ticks are shown to the strategy, never traded, valued or counted: a
    strategy that remembers `window` ticks decides the same after `window` and after
    2 x `window` ticks of warm-up, and its figures are the same."""
    cfg = synthetic_config(tmp_path)
    history = synthetic_history(400, seed=4)
    sc = cfg.strategies[0]
    window = sc.params["window"]

    def replay(warmup):
        strategy = MeanReversion(MeanReversionParams(**sc.params))
        return run_backtest(
            cfg, history, allowlist=ALLOWLIST, port=InProcessStrategy(strategy, name=sc.name),
            start=200, end=400, warmup=warmup,
        )  # fmt: skip

    once, twice, cold = replay(window), replay(2 * window), replay(0)
    assert [d.intents for d in once.decisions] == [d.intents for d in twice.decisions]
    assert once.metrics == twice.metrics
    assert once.equity == twice.equity
    assert (once.warmup, twice.warmup, cold.warmup) == (window, 2 * window, 0)
    # Without warm-up the strategy starts cold, so its first decisions may differ: this is
    # what the warm-up gate measures.
    assert [d.tick for d in cold.decisions] == [d.tick for d in once.decisions]
