"""The round trip of a Uniswap V3 buy (the honeypot probe, `round-trip-sellable`).

What defiagent/simulation/round_trip.py does for a Uniswap V2 buy, through V3's own
contracts: on the fork, at the block the plan was simulated on, in one simulated block,

    the planned buy calls (approve + SwapRouter exactInputSingle / exactInput /
    exactOutputSingle / exactOutput)
    -> approve the SwapRouter for exactly what the buy delivered
    -> exactInput of that amount along the reverse packed path, same fee tiers
       (recipient the agent, amountOutMinimum 0)

and what came back (the simulation's measured balance change) is compared with what the
pools' own arithmetic gives: QuoterV2's quoteExactInput (quoteExactInputSingle for one
hop) of the same sale, read in the state the buy leaves (the buy calls, then the quote,
in one eth_simulateV1 block from the same block). QuoterV2 runs each pool's swap up to its
callback: the pool sends its output first, and the callback reverts before the seller
pays. So the quote is pool math (ticks, fee, liquidity) and never sees a block on transfers
*to* the pool, which the real sale meets.

The amount quoted is what the buy's last pool paid (its Swap event), i.e. what an honest
token would have delivered, as the V2 probe expects the sale of what an honest token would
have delivered: a tax on transfers *from* the pool (a buy tax) then shows as a loss beyond
fees. A tax on transfers *to* the pool (a sell tax) short-pays the pool, which reverts the
sale ("IIA"): such a token cannot be sold on V3, and is refused as one. A token whose
transfers to the pool revert (a sell block) makes the router's payment revert ("STF").

The token is refused when the sale reverts or returns nothing ("cannot be sold"), or returns
less than the quote by more than `[guard.honeypot] max_round_trip_loss_bps` ("loses N bps
beyond fees"). The fees reported are the pools' fee tiers both ways (fee / 1e6 per hop).
Everything fails closed: a probe that cannot run (no V3 settings, no pool, the quoter does
not answer, the buy reverts) refuses, with the reason.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Sequence
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address

from defiagent.abi_signature import parse_signature
from defiagent.chain.rpc import RpcError
from defiagent.execution.models import ExpectedDelta, PlannedCall
from defiagent.guard.calldata import decode_call, encode_call, selector_of
from defiagent.guard.packed_path import PathError, encode_path, swap_order
from defiagent.protocols.base import RoundTripRequest
from defiagent.protocols.erc20.functions import APPROVE
from defiagent.protocols.uniswap_v3.functions import (
    EXACT_INPUT,
    EXACT_INPUT_SINGLE,
    EXACT_OUTPUT,
    EXACT_OUTPUT_SINGLE,
)
from defiagent.protocols.uniswap_v3.planner import NAME, UniswapV3Settings
from defiagent.protocols.uniswap_v3.quoter import quote_exact_in
from defiagent.simulation import decode
from defiagent.simulation.checks.round_trip_sellable import DEFAULT_MAX_LOSS_BPS
from defiagent.simulation.fork import ForkManager
from defiagent.simulation.models import SimulationOutcome
from defiagent.simulation.round_trip import (
    _MAX_CACHED,
    ProbeError,
    RoundTrip,
    _address,
    _bps,
    _buy_outcomes,
    _buy_reverted,
    _cannot_run,
    _deadline,
    _eth_call,
    _factory,
    _failed,
    _fmt,
    _judge,
    _measure_buy,
    _Pinned,
    _sell,
    _simulator,
    _symbol,
    _unsold,
)
from defiagent.simulation.simulator import READER, Simulator
from defiagent.strategy.intent_base import SwapExactIn, SwapExactOut

log = logging.getLogger("defiagent.simulation")

_GET_POOL = "0x" + keccak(text="getPool(address,address,uint24)")[:4].hex()
_SWAP_EVENT = "0x" + keccak(text="Swap(address,address,int256,int256,uint160,uint128,int24)").hex()
_ZERO = "0x" + "00" * 20
# (chain id, factory, token, token, fee) -> the pool: a V3 factory never replaces a pool.
_POOLS: dict[tuple[int | None, str, str, str, int], str] = {}


def probe_plan(
    simulator: Simulator, request: RoundTripRequest, settings: UniswapV3Settings | None
) -> RoundTrip:
    """The V3 adapter's `round_trip` hook: the round trip of a swap it planned, through
    the SwapRouter and QuoterV2 of `settings`. Never raises."""
    intent, limit = request.intent, request.limit_bps
    fields: dict[str, Any] = {
        "token": getattr(intent, "token_out", None),
        "back_token": getattr(intent, "token_in", None),
    }
    if not isinstance(intent, SwapExactIn | SwapExactOut):
        reason = ProbeError(f"a {intent.kind} is not a buy {NAME} can probe")
        return _cannot_run("swap", reason, limit, **fields)
    if settings is None:
        reason = ProbeError(
            f"agent.toml has no [protocols.{NAME}] table (router and quoter) to probe with"
        )
        return _cannot_run("swap", reason, limit, **fields)
    return probe_v3_round_trip(
        simulator,
        request.agent,
        settings.router,
        settings.quoter,
        request.calls,
        limit_bps=limit,
        buy_outcomes=request.outcomes,
    )


def probe_v3_round_trip(
    simulator_or_fork: Simulator | ForkManager,
    agent: str,
    router: str,
    quoter: str,
    buy_calls: Sequence[PlannedCall],
    *,
    limit_bps: int = DEFAULT_MAX_LOSS_BPS,
    buy_outcomes: Sequence[SimulationOutcome] | None = None,
) -> RoundTrip:
    """Buy with `buy_calls` (the last one the SwapRouter swap), sell what it delivered back
    along the reverse path through `router` (exactInput), and judge what came back against
    `quoter`'s (QuoterV2's) quote of that sale after the buy.

    `buy_outcomes`: the plan's own simulation, reused when it ran on the probe's block.
    Never raises: a probe that cannot run is a refusal with the reason.
    """
    fields: dict[str, Any] = {}
    try:
        if not buy_calls:
            raise ProbeError("there is no buy to probe")
        path, fees = swap_route(buy_calls[-1])
        fields.update(token=path[-1], back_token=path[0], path=path)
        return _probe(
            _simulator(simulator_or_fork),
            to_checksum_address(agent),
            to_checksum_address(router),
            to_checksum_address(quoter),
            list(buy_calls),
            path,
            fees,
            limit_bps=limit_bps,
            buy_outcomes=buy_outcomes,
        )
    except Exception as exc:  # fail closed: whatever stopped the probe refuses the buy
        log.warning("round-trip probe could not run: %s", exc)
        return _cannot_run("swap", exc, limit_bps, **fields)


def swap_route(call: PlannedCall) -> tuple[list[str], list[int]]:
    """The SwapRouter call's tokens (the one sold first) and fee tier per hop."""
    selector = selector_of(call.data)
    for signature in (EXACT_INPUT_SINGLE, EXACT_OUTPUT_SINGLE):
        if selector == parse_signature(signature).selector:
            args = decode_call(signature, call.data)
            tokens = [args.get("params.tokenIn"), args.get("params.tokenOut")]
            return [to_checksum_address(t) for t in tokens], [int(args.get("params.fee"))]
    for signature, reversed_ in ((EXACT_INPUT, False), (EXACT_OUTPUT, True)):
        if selector == parse_signature(signature).selector:
            raw = decode_call(signature, call.data).get("params.path")
            try:
                return swap_order(bytes(raw), reversed_=reversed_)
            except PathError as exc:
                raise ProbeError(f"the buy's path is not a Uniswap V3 path: {exc}") from exc
    raise ProbeError(f"the buy's last call ({selector}) is not a Uniswap V3 SwapRouter swap")


def _probe(
    sim: Simulator,
    agent: str,
    router: str,
    quoter: str,
    buy_calls: list[PlannedCall],
    path: list[str],
    fees: list[int],
    *,
    limit_bps: int,
    buy_outcomes: Sequence[SimulationOutcome] | None,
) -> RoundTrip:
    if len(path) < 2 or len(fees) != len(path) - 1:
        raise ProbeError("the swap path does not have one fee tier per hop")
    token_in, token_out = path[0], path[-1]
    kept = math.prod(1 - fee / 1_000_000 for fee in fees)  # one way
    fields: dict[str, Any] = {
        "token": token_out,
        "back_token": token_in,
        "path": path,
        "router": router,
        "fees_bps": round(10_000 * (1 - kept**2), 2),
    }
    name = _symbol(sim, token_out)
    back, back_fees = path[::-1], fees[::-1]
    with _Pinned(sim, buy_outcomes) as block:
        fields["block_number"] = block
        tag = hex(block)
        buys = _buy_outcomes(sim, buy_calls, buy_outcomes, block)
        reverted = _buy_reverted(buys, buy_calls)
        if reverted:
            return _failed("swap", f"{name}: {reverted}", limit_bps, **fields)
        failed = _measure_buy(sim, buys, token_in, token_out, limit_bps, fields)
        if failed is not None:
            return failed
        bought, spent = fields["bought"], fields["spent"]
        pools = _pools(sim.fork, tag, router, path, fees)
        fields["pools"] = pools
        # What the last pool paid: what an honest token would have delivered.
        paid = _paid(buys[-1], pools[-1], token_out, path[-2])
        sell = [
            PlannedCall(
                intent_id="round-trip-probe",
                intent_kind="approve",
                target=token_out,
                data=encode_call(APPROVE, [router, bought]),
                sender=agent,
                allowed_approvals={f"{token_out}:{router}": bought},
                description=f"approve the router for the {_fmt(sim, token_out, bought)} bought",
            ),
            PlannedCall(
                intent_id="round-trip-probe",
                intent_kind="swap-exact-in",
                target=router,
                data=encode_call(
                    EXACT_INPUT,
                    [(encode_path(back, back_fees), agent, _deadline(sim.fork), bought, 0)],
                ),
                sender=agent,
                expected=[
                    ExpectedDelta(token=token_out, min_delta=-bought),
                    ExpectedDelta(token=token_in, min_delta=0),
                ],
                description=f"sell {_fmt(sim, token_out, bought)} back",
            ),
        ]
        outcomes = _sell(sim, buy_calls, token_out, router, agent, sell)
        unsold = _unsold(
            sim,
            name,
            buy_calls,
            outcomes,
            "exactInput",
            block=block,
            limit_bps=limit_bps,
            fields=fields,
        )
        if unsold is not None:
            return unsold
        # QuoterV2's answer for selling that back, on the pools as the buy left them.
        quote = quote_exact_in(
            _AfterCalls(sim, buy_calls), quoter, back, back_fees, paid, block=tag
        )
    expected_back = quote.amount_out
    fields.update(expected_back=expected_back, expected_loss_bps=_bps(spent - expected_back, spent))
    return _judge(sim, "swap", name, limit_bps, fields, source=("QuoterV2's quote", "gives"))


def _pools(
    fork: ForkManager, tag: str, router: str, path: Sequence[str], fees: Sequence[int]
) -> list[str]:
    """The router factory's pool for each hop of `path` at its fee tier."""
    chain = fork.chain_id
    factory = _factory(fork, tag, router)
    hops = [
        (min(a.lower(), b.lower()), max(a.lower(), b.lower()), fee)
        for (a, b), fee in zip(itertools.pairwise(path), fees, strict=True)
    ]
    found = {h: _POOLS[(chain, factory, *h)] for h in hops if (chain, factory, *h) in _POOLS}
    missing = [h for h in dict.fromkeys(hops) if h not in found]
    if missing:
        requests = [
            (factory, _GET_POOL + abi_encode(["address", "address", "uint24"], list(h)).hex())
            for h in missing
        ]
        for hop, raw in zip(missing, _eth_call(fork, tag, requests), strict=True):
            pool = _address(raw)
            if pool == _ZERO:
                raise ProbeError(
                    f"the router's factory has no pool for {hop[0]}/{hop[1]} at fee {hop[2]}"
                )
            found[hop] = pool
            if len(_POOLS) < _MAX_CACHED:
                _POOLS[(chain, factory, *hop)] = pool
    return [found[h] for h in hops]


def _paid(outcome: SimulationOutcome, pool: str, token: str, other: str) -> int:
    """What `pool` (of `token` and `other`) paid out of `token` in `outcome`, from its one
    Swap event: the pool's own figure, whatever the token then did with the transfer."""
    events = [
        log
        for log in outcome.logs
        if log.topics
        and log.topics[0].lower() == _SWAP_EVENT
        and log.address.lower() == pool.lower()
    ]
    if len(events) != 1:
        raise ProbeError(
            f"the buy's last pool {pool} shows {len(events)} Swap events, not one, so what it "
            "paid cannot be read"
        )
    raw = bytes.fromhex(events[0].data.removeprefix("0x"))
    amount0, amount1 = abi_decode(["int256", "int256"], raw[:64])
    # token0 is the lower address of the two (the factory sorts them); a pool's paid-out
    # amount is its negative one.
    out = amount0 if int(token, 16) < int(other, 16) else amount1
    if out >= 0:
        raise ProbeError(f"the buy's last pool {pool} paid out no {token}")
    return int(-out)


class _AfterCalls:
    """An RpcCaller (what quoter.py reads with) whose eth_call runs on the state `calls`
    leave: the calls, then the read, in one eth_simulateV1 block at the given block, timed
    as the simulator times its blocks. Nothing is mined."""

    def __init__(self, sim: Simulator, calls: Sequence[PlannedCall]) -> None:
        self.fork = sim.fork
        self.calls = list(calls)

    def call(self, method: str, *params: Any) -> Any:
        if method != "eth_call" or len(params) != 2:
            raise RpcError(f"{method} is not a read the round trip makes after the buy")
        read, tag = params
        txs = [
            {"from": c.sender, "to": c.target, "data": c.data, "value": hex(c.value)}
            for c in self.calls
        ]
        when = max(int(time.time()), self.fork.block_timestamp + 1)
        block = {
            "blockOverrides": {"time": hex(when)},
            "calls": [*txs, {"from": READER, **read}],
        }
        result = self.fork.rpc.call(
            "eth_simulateV1", {"blockStateCalls": [block], "validation": False}, tag
        )
        try:
            results = result[0]["calls"]
        except (TypeError, KeyError, IndexError) as exc:
            raise RpcError("the fork returned a simulation result that cannot be read") from exc
        if len(results) != len(txs) + 1:
            raise RpcError("the fork returned a simulation result for the wrong number of calls")
        for res in results[:-1]:
            if res.get("status") != "0x1":
                raise RpcError("the buy reverts on the fork before the read")
        last = results[-1]
        if last.get("status") != "0x1":
            data = last.get("returnData") or "0x"
            message = (last.get("error") or {}).get("message")
            raise RpcError(f"execution reverted: {decode.revert_reason(data, message)}")
        return last.get("returnData") or "0x"


__all__ = ["probe_plan", "probe_v3_round_trip", "swap_route"]
