"""Re-quote a swap from the fork's own execution and compare it with the planner's quote.

The planner, the slippage bound and the value caps read reserves through `eth_call`
answers of the RPC; the fork runs the pool's code on its storage. A node that lies about
`getReserves` (and, consistently, the cumulative prices, so the TWAP agrees) moves every
check that reads it, and a min-out follows the lie; the pair's storage on the fork does
not. So the swap's simulated output (what the router's own getAmountsOut pays on the fork
state, same block) must agree with the snapshot's quote within the slippage bound, or the
plan is refused: one of the two views of the pool is not the pool.

What is compared is the pool's own execution, read from each hop's Swap event on the fork:
what the pool received and what it paid, against the snapshot's quote for what it received.
The agent's balance delta is not the pool's price: a fee-on-transfer token keeps part of
every transfer (into the first pool, out of the last one), which says nothing about the
reserves; what the agent actually receives is judged against the intent's min-out by
`deltas-within-intent`. Only when a hop's pool emitted no Swap event (not a Uniswap V2 pair)
does the check fall back to the agent's delta against the whole path's quote.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from eth_utils import keccak, to_checksum_address

from defiagent.execution.models import PlannedCall
from defiagent.market.models import MarketSnapshot, PoolState
from defiagent.simulation.models import SimulationOutcome
from defiagent.strategy.intents import SwapExactIn, SwapExactOut

RULE = "requote-agrees"
# Uniswap V2 pair: Swap(sender indexed, amount0In, amount1In, amount0Out, amount1Out, to indexed)
SWAP_EVENT = "0x" + keccak(text="Swap(address,uint256,uint256,uint256,uint256,address)").hex()


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
    if intent.venue != "uniswap-v2":
        # Only V2 quotes come from the RPC's reserves; a V3 swap is quoted by QuoterV2 on
        # the fork itself (defiagent.protocols.quoting), so there is no second view to test.
        return None
    swap = outcomes[len(calls) - 1]  # the swap is the plan's last call
    path = market.route(intent.token_in, intent.token_out, via=weth)
    if path is None:
        return None  # no route: the guard has refused it already
    pools = [market.pool_for(a, b) for a, b in itertools.pairwise(path)]
    hops = pool_swaps(swap, [p for p in pools if p is not None], path)
    if hops is not None and len(hops) == len(pools):
        return _hop_problem(path, pools, hops, max_bps)
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


def pool_swaps(
    outcome: SimulationOutcome, pools: Sequence[PoolState], path: Sequence[str]
) -> list[tuple[int, int]] | None:
    """Per hop of `path`: (what its pool received of the hop's input token, what it paid of
    the output token), from the pool's Swap event in the simulated logs; None when a pool
    emitted none (or several: a pool crossed twice is not a plain path)."""
    found: list[tuple[int, int]] = []
    for pool, (a, _) in zip(pools, itertools.pairwise(path), strict=False):
        events = [
            log
            for log in outcome.logs
            if log.topics
            and log.topics[0].lower() == SWAP_EVENT
            and log.address.lower() == pool.address.lower()
        ]
        if len(events) != 1:
            return None
        raw = events[0].data.removeprefix("0x")
        if len(raw) < 256:
            return None
        in0, in1, out0, out1 = (int(raw[64 * i : 64 * (i + 1)], 16) for i in range(4))
        if to_checksum_address(a) == to_checksum_address(pool.token0):
            found.append((in0, out1))
        else:
            found.append((in1, out0))
    return found


def _hop_problem(
    path: Sequence[str],
    pools: Sequence[PoolState | None],
    hops: Sequence[tuple[int, int]],
    max_bps: float,
) -> str | None:
    for (a, _), pool, (received, paid) in zip(itertools.pairwise(path), pools, hops, strict=True):
        assert pool is not None  # pool_swaps matched one event per pool
        try:
            quoted = pool.amount_out(a, received)
        except ValueError:  # an empty pool or nothing in
            quoted = 0
        if not quoted or paid <= 0:
            return (
                f"the swap cannot be re-quoted on the fork: pool {pool.address} received "
                f"{received} and paid {paid}, the RPC's reserves quote {quoted}"
            )
        apart = abs(paid - quoted) / quoted * 10_000
        if apart > max_bps:
            return (
                f"on the fork pool {pool.address} pays {paid} for the {received} it received, "
                f"where the RPC's reserves quoted {quoted} ({apart:.0f} bps apart, limit "
                f"{max_bps:g}): the RPC's view of the pool is not the pool's state"
            )
    return None
