"""Why a strategy is paused is said where the pause is shown: the cause of a portfolio that
cannot be valued (which holding, and what its price check said) reaches the limits' reason,
the tick report and the terminal line."""

from __future__ import annotations

import io

from rich.console import Console

from defiagent.agent.reports import TickReport
from defiagent.cli.agent_output import print_tick
from defiagent.guard.registry import build_rules
from defiagent.market.observer import numeraire_prices
from defiagent.risk.max_daily_loss import MaxDailyLoss
from defiagent.risk.pnl import PortfolioHistory
from tests.guard import world


def risk_for(checks_ok: bool):
    market = world.market(checks_ok=checks_ok)
    prices = numeraire_prices(market, weth=world.WETH)
    _, risk = PortfolioHistory(loss_window_seconds=86_400).observe(
        1_000.0, market, world.portfolio(), prices
    )
    return risk


def test_an_unvalued_portfolio_names_the_holding_and_its_failing_check():
    risk = risk_for(checks_ok=False)
    assert risk.value_now is None
    assert risk.unvalued_reason == (
        "DTKN has no sane price: spot deviates 900 bps from the reference"
    )


def test_a_valued_portfolio_has_no_such_reason():
    risk = risk_for(checks_ok=True)
    assert risk.value_now is not None
    assert risk.unvalued_reason == ""


def test_the_loss_limit_pause_carries_the_cause():
    rule = next(r for r in build_rules() if isinstance(r, MaxDailyLoss))
    ctx = world.context(risk=risk_for(checks_ok=False))
    reason = rule.pause_reason(ctx)
    assert reason == (
        "the portfolio cannot be valued (DTKN has no sane price: spot deviates 900 bps from "
        "the reference), so the loss limit cannot be checked"
    )


def test_the_tick_line_says_who_is_paused_and_why():
    out = io.StringIO()
    report = TickReport(tick=3, block=9, paused={"mean-reversion": "max-daily-loss: because"})
    print_tick(Console(file=out, width=200), report)
    assert "mean-reversion paused: max-daily-loss: because" in out.getvalue()
