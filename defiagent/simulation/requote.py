"""Re-quote a swap from the fork's own execution and compare it with the planner's quote.

The planner, the slippage bound and the value caps read reserves through `eth_call`
answers of the RPC; the fork runs the pool's code on its storage. A node that lies about
`getReserves` (and, consistently, the cumulative prices, so the TWAP agrees) moves every
check that reads it, and a min-out follows the lie; the pair's storage on the fork does
not. So the swap's simulated output (what the router's own getAmountsOut pays on the fork
state, same block) must agree with the snapshot's quote within the slippage bound, or the
plan is refused: one of the two views of the pool is not the pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from defiagent.execution.models import PlannedCall
from defiagent.market.models import MarketSnapshot
from defiagent.simulation.models import SimulationOutcome
from defiagent.strategy.intents import SwapExactIn, SwapExactOut

RULE = "requote-agrees"


def requote_problem(
    intent: Any,
    calls: Sequence[PlannedCall],
    outcomes: Sequence[SimulationOutcome],
    market: MarketSnapshot,
    *,
    weth: str | None,
    max_bps: float,
) -> str | None:
    """Why the fork's price of this swap disagrees with the snapshot's, or None."""
    if not isinstance(intent, SwapExactIn | SwapExactOut) or not calls:
        return None
    swap = outcomes[len(calls) - 1]  # the swap is the plan's last call
    path = market.route(intent.token_in, intent.token_out, via=weth)
    if path is None:
        return None  # no route: the guard has refused it already
    if isinstance(intent, SwapExactIn):
        quoted = market.quote_out(path, intent.amount_in)
        fork = swap.deltas.get(intent.token_out, 0)
        what = "pays"
    else:
        quoted = market.quote_in(path, intent.amount_out)
        fork = -swap.deltas.get(intent.token_in, 0)
        what = "costs"
    if not quoted or fork <= 0:
        return f"the swap cannot be re-quoted on the fork (snapshot {quoted}, fork {fork})"
    apart = abs(fork - quoted) / quoted * 10_000
    if apart <= max_bps:
        return None
    return (
        f"on the fork the swap {what} {fork} where the RPC's reserves quoted {quoted} "
        f"({apart:.0f} bps apart, limit {max_bps:g}): the RPC's view of the pool is not "
        "the pool's state"
    )
