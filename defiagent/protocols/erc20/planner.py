"""Approvals: the exact approve a swap or deposit needs, and the strategy's own `approve`."""

from __future__ import annotations

from defiagent.execution.models import PlannedCall
from defiagent.guard.calldata import encode_call
from defiagent.market.models import MarketSnapshot, PortfolioSnapshot
from defiagent.protocols.base import PlanningError, ProtocolPlanner
from defiagent.protocols.erc20.functions import APPROVE
from defiagent.protocols.planning import call, fmt, symbol
from defiagent.strategy.intent_base import Approve, IntentBase


def approval_if_needed(
    intent: IntentBase,
    sender: str,
    token: str,
    spender: str,
    needed: int,
    market: MarketSnapshot,
    portfolio: PortfolioSnapshot,
    *,
    spender_name: str = "the router",
) -> list[PlannedCall]:
    """An approve of `spender` for exactly `needed` of `token`, unless the allowance suffices.

    Never more than needed: a larger allowance would outlive the trade it was made for.
    When some allowance is left (an exact-out swap that cost less than its most), it is
    first reset to 0 (`reset_allowance`).
    """
    left = portfolio.allowance(token, spender)
    if left >= needed:
        return []
    return [
        *reset_allowance(intent, sender, token, spender, left, market),
        call(
            intent,
            sender,
            token,
            encode_call(APPROVE, [spender, needed]),
            allowed_approvals={f"{token}:{spender}": needed},
            description=f"approve {spender_name} for exactly {fmt(market, token, needed)}",
        ),
    ]


def reset_allowance(
    intent: IntentBase,
    sender: str,
    token: str,
    spender: str,
    left: int,
    market: MarketSnapshot,
) -> list[PlannedCall]:
    """An approve of 0 before an approve, when an allowance is left.

    For every token, not only the ones known to need it: a USDT-style token reverts on an
    approve from one non-zero allowance to another, nothing on chain says which tokens do
    (USDT's own approve is not flagged by any standard), and a reset costs one approve only
    when something is left, which the planner's exact approvals rarely leave. It is also
    the ERC-20 answer to the approve race (a spender spending the old allowance and then the
    new one). The reset is bounded like any approval (`allowed_approvals` = 0, so the guard's
    approval-bounded rule refuses a call that says reset but grants more) and its spender is
    the real approve's, judged by spender-allowlisted like any other.
    """
    if left <= 0:
        return []
    return [
        call(
            intent,
            sender,
            token,
            encode_call(APPROVE, [spender, 0]),
            allowed_approvals={f"{token}:{spender}": 0},
            step="reset-allowance",
            description=(
                f"reset the allowance of {spender[:10]}… on {symbol(market, token)} to 0 first "
                f"({fmt(market, token, left)} left)"
            ),
        )
    ]


class Erc20Planner(ProtocolPlanner):
    def plan(
        self, intent: IntentBase, market: MarketSnapshot, portfolio: PortfolioSnapshot
    ) -> list[PlannedCall]:
        if not isinstance(intent, Approve):
            raise PlanningError(f"intent kind {intent.kind!r} is not an ERC-20 approval")
        i = intent
        amount = (
            f"an unlimited amount of {symbol(market, i.token)}"
            if i.amount >= 2**255
            else fmt(market, i.token, i.amount)
        )
        left = portfolio.allowance(i.token, i.spender) if i.amount > 0 else 0
        return [
            *reset_allowance(i, self.agent, i.token, i.spender, left, market),
            call(
                i,
                self.agent,
                i.token,
                encode_call(APPROVE, [i.spender, i.amount]),
                allowed_approvals={f"{i.token}:{i.spender}": i.amount},
                description=f"approve {i.spender} for {amount}",
            ),
        ]
