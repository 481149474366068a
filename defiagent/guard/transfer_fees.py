"""Quotes of swaps through fee-on-transfer tokens, for the slippage bound.

A token whose allowlist entry declares `transfer_fee_bps` keeps that share of each transfer:
the sale into the first pool, each pool's payout to the next one, the last payout to the
recipient (how Router02's ...SupportingFeeOnTransferTokens swaps move it). The quote the
min-out is held to is what reaches the recipient after those fees, never the pools' nominal
output: a strategy that sets its min-out from the nominal quote is refused in simulation (it
would receive less), and one that sets it from this quote is not refused here for a fee the
reviewers declared. The declared fee is the most allowed: a token that takes more is caught
on the fork (deltas-within-intent, and the router's own min-out check).
"""

from __future__ import annotations

from collections.abc import Sequence

from defiagent.guard.base import GuardContext
from defiagent.market.models import MarketSnapshot
from defiagent.protocols.base import ProtocolAdapter, QuoteRequest


def declared_fees(ctx: GuardContext, tokens: Sequence[str]) -> dict[str, int]:
    """token (lower-case) -> the fee its active entry declares, for the tokens that have one."""
    out = {}
    for token in tokens:
        entry = ctx.entry(token)
        if entry is not None and not entry.revoked and entry.transfer_fee_bps is not None:
            out[token.lower()] = entry.transfer_fee_bps
    return out


def quote_after_fees(
    quoter: ProtocolAdapter,
    market: MarketSnapshot,
    tokens: Sequence[str],
    tiers: Sequence[int] | None,
    amount_in: int,
    fees: dict[str, int],
) -> int | None:
    """What reaches the recipient of an exact-in swap when each token keeps its declared fee
    on each transfer, quoted hop by hop by the protocol; None when a hop cannot be quoted."""
    amount = amount_in - amount_in * fees.get(tokens[0].lower(), 0) // 10_000
    for k in range(len(tokens) - 1):
        if amount <= 0:
            return None
        hop = QuoteRequest(
            exact="in",
            path=(tokens[k], tokens[k + 1]),
            amount=amount,
            fees=(tiers[k],) if tiers else None,
        )
        quoted = quoter.quote(hop, market)
        if quoted is None:
            return None
        amount = quoted - quoted * fees.get(tokens[k + 1].lower(), 0) // 10_000
    return amount
