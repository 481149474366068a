"""What every protocol planner does the same way: build a call, name amounts, a deadline."""

from __future__ import annotations

from typing import Any

from defiagent.execution.models import PlannedCall
from defiagent.market.models import MarketSnapshot
from defiagent.strategy.intent_base import IntentBase


def call(intent: IntentBase, sender: str, target: str, data: str, **kw: Any) -> PlannedCall:
    return PlannedCall(
        intent_id=intent.id, intent_kind=intent.kind, target=target, data=data, sender=sender, **kw
    )


def deadline(intent: IntentBase, market: MarketSnapshot) -> int:
    return market.block_timestamp + intent.deadline_seconds


def symbol(market: MarketSnapshot, token: str) -> str:
    info = market.token(token)
    return info.symbol if info else token[:10]


def fmt(market: MarketSnapshot, token: str, amount: int) -> str:
    """An amount in whole units with its symbol, for the call's description."""
    info = market.token(token)
    if info is None:
        return f"{amount} of {token[:10]}…"
    return f"{amount / 10**info.decimals:,.6g} {info.symbol}"
