"""Wrap and unwrap: one call to WETH9 each, with the deltas the outcome check expects."""

from __future__ import annotations

from defiagent.execution.models import ExpectedDelta, PlannedCall
from defiagent.guard.calldata import encode_call
from defiagent.market.models import MarketSnapshot, PortfolioSnapshot
from defiagent.protocols.base import PlanningError, ProtocolPlanner
from defiagent.protocols.planning import call
from defiagent.protocols.weth.functions import DEPOSIT, WITHDRAW
from defiagent.protocols.weth.intents import Unwrap, Wrap
from defiagent.strategy.intent_base import IntentBase


class WethPlanner(ProtocolPlanner):
    def plan(
        self, intent: IntentBase, market: MarketSnapshot, portfolio: PortfolioSnapshot
    ) -> list[PlannedCall]:
        weth = self.ctx.addresses.weth
        if isinstance(intent, Wrap):
            return [
                call(
                    intent,
                    self.agent,
                    weth,
                    encode_call(DEPOSIT, []),
                    value=intent.amount,
                    expected=[
                        ExpectedDelta(token=None, min_delta=-intent.amount),
                        ExpectedDelta(token=weth, min_delta=intent.amount),
                    ],
                    description=f"wrap {intent.amount / 1e18:,.6g} ETH",
                )
            ]
        if isinstance(intent, Unwrap):
            return [
                call(
                    intent,
                    self.agent,
                    weth,
                    encode_call(WITHDRAW, [intent.amount]),
                    expected=[
                        ExpectedDelta(token=weth, min_delta=-intent.amount),
                        ExpectedDelta(token=None, min_delta=intent.amount),
                    ],
                    description=f"unwrap {intent.amount / 1e18:,.6g} WETH",
                )
            ]
        raise PlanningError(f"intent kind {intent.kind!r} is not a WETH wrap or unwrap")
