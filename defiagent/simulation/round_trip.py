"""The round trip: can what a buy acquires be sold back, and at what loss? (honeypot tokens)

A honeypot token lets anyone buy and nobody sell (its transfers to the pool revert unless they
come from its owner), or taxes a sale so that little comes back. The fork shows it before
anything is signed: for a Uniswap V2 buy, in one simulated block, at the block the plan was
simulated on, run

    the planned buy calls (e.g. approve + swap)
    -> approve the router for exactly what the buy delivered
    -> swapExactTokensForTokens of that amount back along the reverse path, same router

and compare what comes back with what Uniswap V2's exact math gives from the pools' reserves at
that block (0.3% per hop each way, and the price impact of both legs). The token is refused
when the sale reverts or returns nothing ("cannot be sold"), or when it returns less than the
expected amount by more than the configured share ("loses N bps beyond fees").

The sale uses the same router function the agent's planner sells with: a token with a tax on
transfers *to* the pair makes swapExactTokensForTokens revert ("UniswapV2: K"), so the agent
could never sell it either, and it is refused as one that cannot be sold. A tax on transfers
*from* the pair (a buy tax) shows as a loss beyond fees.

A token its allowlist entry declares fee-on-transfer (`transfer_fee_bps`) is bought with the
router's swapExactTokensForTokensSupportingFeeOnTransferTokens, and sold back with it too.
Its fee is then measured on the buy (what the last pool paid, from its Swap event, against
what reached the agent) and must be no more than the declared one; the sale is expected to
lose that same share of its transfer into the pool, and anything beyond it (a sell tax
higher than the buy's) counts as a loss beyond fees, as before. When the sale's approve
reverts, the probe tries once more with an approve to 0 before it, as the planner does when
an allowance is left (USDT-style tokens revert otherwise).

An add-liquidity acquires the pool's LP token: its round trip is the planned add, then approve
+ removeLiquidity of the LP tokens received; what comes back of each token is compared with
the pool's exact mint/burn math (no swap fee; a protocol fee mint, when the factory has one,
shows as a small loss).

Each protocol probes the buys it plans, through its adapter's `round_trip` hook
(`ProtocolAdapter.round_trip` in defiagent/protocols/base.py): `check_plan_round_trip`, the
agent's step, asks the protocol the registry routes the intent to (by kind and venue).
Uniswap V2's hook is the probe above (`probe_v2_plan`). Uniswap V3's
(defiagent/protocols/uniswap_v3/round_trip.py) runs the same round trip through its
SwapRouter (exactInput back along the reverse packed path, same fee tiers) and compares
what comes back with QuoterV2's quote of that sale in the state the buy leaves, from the
helpers here (`_Pinned`, `_buy_outcomes`, `_sell`, `_unsold`, `_judge`). A protocol without
a hook cannot probe its buys, and they are refused.

Everything fails closed: a probe that cannot run (the fork does not answer, the pool cannot
be read, the buy reverts, no protocol probes the buy) refuses, with the reason.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address
from pydantic import BaseModel, ConfigDict

from defiagent.decisions import Verdict
from defiagent.errors import DefiagentError, InfraError, Refused
from defiagent.execution.models import ExpectedDelta, PlannedCall
from defiagent.guard.calldata import decode_call, encode_call, selector_of
from defiagent.protocols import registry
from defiagent.protocols.base import ProtocolAddresses, RoundTripRequest
from defiagent.protocols.erc20.functions import APPROVE
from defiagent.protocols.uniswap_v2 import math as v2
from defiagent.protocols.uniswap_v2.functions import (
    REMOVE_LIQUIDITY,
    SWAP_EXACT_IN,
    SWAP_EXACT_IN_FOT,
    SWAP_EXACT_OUT,
)
from defiagent.protocols.uniswap_v2.intents import AddLiquidity
from defiagent.protocols.weth.functions import DEPOSIT
from defiagent.simulation.checks.round_trip_sellable import (
    DEFAULT_MAX_LOSS_BPS,
    RoundTripConfig,
    RoundTripSellable,
)
from defiagent.simulation.fork import ForkManager
from defiagent.simulation.models import SimulationOutcome
from defiagent.simulation.simulator import Simulator
from defiagent.strategy.intent_base import SwapExactIn, SwapExactOut

log = logging.getLogger("defiagent.simulation")

RULE = RoundTripSellable.id
# A funded account on a throwaway fork, for `allowlist propose --probe-pool`: nobody holds its
# key; the fork impersonates it. Never used on a real chain.
PROBE_ACCOUNT = to_checksum_address("0x" + keccak(text="defiagent round-trip probe")[-20:].hex())
PROBE_SHARE_DIVISOR = 1_000  # propose buys about 0.1% of the pool's depth


def _sel(signature: str) -> str:
    return "0x" + keccak(text=signature)[:4].hex()


_FACTORY = _sel("factory()")
_WETH = _sel("WETH()")
_GET_PAIR = _sel("getPair(address,address)")
_GET_RESERVES = _sel("getReserves()")
_TOKEN0 = _sel("token0()")
_TOKEN1 = _sel("token1()")
_TOTAL_SUPPLY = _sel("totalSupply()")
_SWAP_EXACT_IN = _sel("swapExactTokensForTokens(uint256,uint256,address[],address,uint256)")
_SWAP_EXACT_OUT = _sel("swapTokensForExactTokens(uint256,uint256,address[],address,uint256)")
_SWAP_EXACT_IN_FOT = _sel(
    "swapExactTokensForTokensSupportingFeeOnTransferTokens(uint256,uint256,address[],address,"
    "uint256)"
)
_V2_SWAP_EVENT = "0x" + keccak(text="Swap(address,uint256,uint256,uint256,uint256,address)").hex()
_ADD_LIQUIDITY = _sel(
    "addLiquidity(address,address,uint256,uint256,uint256,uint256,address,uint256)"
)
_ZERO = "0x" + "00" * 20
_BUY_KINDS = ("swap-exact-in", "swap-exact-out")


class ProbeError(Refused):
    """The round trip could not be simulated or judged."""


class RoundTrip(BaseModel):
    """What the round trip on the fork showed. `passed` is what the agent acts on."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["swap", "liquidity"] = "swap"
    sellable: bool  # the sale back ran and returned something
    passed: bool  # sellable, and the loss beyond fees is within the limit
    token: str | None = None  # what the buy acquires (the LP token for a liquidity add)
    back_token: str | None = None  # what the sale returns (the buy's token_in)
    path: list[str] = []
    router: str | None = None
    pools: list[str] = []  # one per hop of the path (the pair, for a liquidity add)
    block_number: int | None = None
    spent: int = 0  # of back_token, by the buy
    bought: int = 0  # of token, delivered by the buy (measured on the fork)
    sold_back: int = 0  # of back_token, returned by the sale (measured on the fork)
    expected_back: int = 0  # of back_token, by exact V2 math from the reserves at the block
    expected_loss_bps: float | None = None  # what fees and price impact alone cost, vs spent
    fees_bps: float = 0.0  # the pools' fees on the way in and out (0.3% per hop each way)
    loss_bps_beyond_fees: float | None = None  # (expected_back - sold_back) / expected_back
    limit_bps: int = DEFAULT_MAX_LOSS_BPS
    reason: str


# ------------------------------------------------------------------------------ helpers


def _simulator(simulator_or_fork: Simulator | ForkManager) -> Simulator:
    if isinstance(simulator_or_fork, ForkManager):
        return Simulator(simulator_or_fork, prefetch=False)
    if not isinstance(getattr(simulator_or_fork, "fork", None), ForkManager):
        raise ProbeError("the round trip needs a simulator on a fork")
    return simulator_or_fork


def _fmt(sim: Simulator, token: str | None, amount: int) -> str:
    if token is None:
        return f"{amount} base units"
    try:
        meta = sim.token_meta([token]).get(to_checksum_address(token))
    except Exception:  # the name is only for people; raw units will do
        meta = None
    if meta is None:
        return f"{amount} base units of {token}"
    whole, frac = divmod(abs(amount), 10**meta.decimals)
    sign = "-" if amount < 0 else ""
    text = f"{whole}.{str(frac).rjust(meta.decimals, '0').rstrip('0')}" if frac else str(whole)
    return f"{sign}{text} {_inert(meta.symbol, 32)}"


def _symbol(sim: Simulator, token: str | None) -> str:
    if token is None:
        return "the token"
    try:
        meta = sim.token_meta([token]).get(to_checksum_address(token))
    except Exception:  # likewise
        meta = None
    return _inert(meta.symbol, 32) if meta is not None else token


def _eth_call(fork: ForkManager, tag: str, requests: list[tuple[str, str]]) -> list[bytes]:
    """Several eth_calls (target, calldata) at `tag` in one batch; any failure raises."""
    answers = fork.rpc.batch(
        [("eth_call", [{"to": to, "data": data}, tag]) for to, data in requests]
    )
    out = []
    for (to, data), answer in zip(requests, answers, strict=True):
        raw = bytes.fromhex((answer or "0x").removeprefix("0x"))
        if len(raw) < 32:
            raise ProbeError(f"{to} returned nothing for {data[:10]} at block {int(tag, 16)}")
        out.append(raw)
    return out


def _address(raw: bytes) -> str:
    return to_checksum_address(abi_decode(["address"], raw[:32])[0])


# (chain id, router) -> its factory, and (chain id, factory, token, token) -> the pair: both
# fixed once they exist (Router02's factory is immutable, a factory never replaces a pair), so
# a probe after the first reads only the reserves.
_FACTORIES: dict[tuple[int | None, str], str] = {}
_PAIRS: dict[tuple[int | None, str, str, str], str] = {}
_MAX_CACHED = 4_096


def _factory(fork: ForkManager, tag: str, router: str) -> str:
    """The factory `router` finds its pools in (its immutable `factory()`: Uniswap V2's
    Router02 and V3's SwapRouter alike)."""
    chain = fork.chain_id
    factory = _FACTORIES.get((chain, router))
    if factory is None:
        (factory_raw,) = _eth_call(fork, tag, [(router, _FACTORY)])
        factory = _address(factory_raw)
        if len(_FACTORIES) < _MAX_CACHED:
            _FACTORIES[(chain, router)] = factory
    return factory


def _pairs(fork: ForkManager, tag: str, router: str, path: Sequence[str]) -> list[str]:
    """The router factory's pair for each hop of `path`."""
    chain = fork.chain_id
    factory = _factory(fork, tag, router)
    # Each hop as its (lower, higher) pair of lower-cased addresses: sorted, as a 2-tuple.
    hops = [
        (min(a.lower(), b.lower()), max(a.lower(), b.lower())) for a, b in itertools.pairwise(path)
    ]
    found = {h: _PAIRS[(chain, factory, *h)] for h in hops if (chain, factory, *h) in _PAIRS}
    missing = [h for h in dict.fromkeys(hops) if h not in found]
    if missing:
        requests = [
            (factory, _GET_PAIR + abi_encode(["address", "address"], list(h)).hex())
            for h in missing
        ]
        for hop, raw in zip(missing, _eth_call(fork, tag, requests), strict=True):
            pair = _address(raw)
            if pair == _ZERO:
                raise ProbeError(f"the router's factory has no pool for {hop[0]}/{hop[1]}")
            found[hop] = pair
            if len(_PAIRS) < _MAX_CACHED:
                _PAIRS[(chain, factory, *hop)] = pair
    return [found[h] for h in hops]


def _reserves(
    fork: ForkManager, tag: str, pairs: Sequence[str], path: Sequence[str]
) -> list[tuple[int, int]]:
    """(reserve of the hop's input token, reserve of its output token) per hop, at `tag`."""
    requests = []
    for pair in pairs:
        requests += [(pair, _TOKEN0), (pair, _GET_RESERVES)]
    answers = _eth_call(fork, tag, requests)
    out = []
    for i, pair in enumerate(pairs):
        token0 = _address(answers[2 * i])
        r0, r1, _ = abi_decode(["uint112", "uint112", "uint32"], answers[2 * i + 1][:96])
        a, b = to_checksum_address(path[i]), to_checksum_address(path[i + 1])
        if token0 == a:
            out.append((r0, r1))
        elif token0 == b:
            out.append((r1, r0))
        else:
            raise ProbeError(f"pool {pair} does not hold {a}")
        if out[-1][0] <= 0 or out[-1][1] <= 0:
            raise ProbeError(f"pool {pair} has no liquidity")
    return out


def _amounts_out(amount_in: int, reserves: Sequence[tuple[int, int]]) -> list[int]:
    amounts = [amount_in]
    for r_in, r_out in reserves:
        amounts.append(v2.get_amount_out(amounts[-1], r_in, r_out))
    return amounts


def _amounts_in(amount_out: int, reserves: Sequence[tuple[int, int]]) -> list[int]:
    amounts = [amount_out]
    for r_in, r_out in reversed(reserves):
        amounts.insert(0, v2.get_amount_in(amounts[0], r_in, r_out))
    return amounts


def _after(reserves: Sequence[tuple[int, int]], amounts: Sequence[int]) -> list[tuple[int, int]]:
    """The reserves once `amounts` went through the hops."""
    return [(r_in + amounts[i], r_out - amounts[i + 1]) for i, (r_in, r_out) in enumerate(reserves)]


def _bps(part: int, whole: int) -> float:
    return round(part * 10_000 / whole, 2) if whole else 0.0


def _deadline(fork: ForkManager) -> int:
    return max(int(time.time()), fork.block_timestamp) + 3_600


def _delta(outcomes: Sequence[SimulationOutcome], token: str) -> int:
    token = to_checksum_address(token)
    total = 0
    for o in outcomes:
        for key, value in o.deltas.items():
            if key != "ETH" and to_checksum_address(key) == token:
                total += value
    return total


def _inert(text: str, limit: int = 200) -> str:
    """Text a token wrote (a revert reason, a symbol): untrusted, so kept short and inert (no
    markup brackets for a terminal, no line breaks or pipes for a table)."""
    for old, new in (("[", "("), ("]", ")"), ("\n", " "), ("\r", " "), ("|", "/")):
        text = text.replace(old, new)
    return text[:limit]


def _why(outcome: SimulationOutcome) -> str:
    return _inert(outcome.revert_reason or "no reason")


def _failed(kind: str, reason: str, limit_bps: int, **fields: Any) -> RoundTrip:
    return RoundTrip(
        kind=kind, sellable=False, passed=False, limit_bps=limit_bps, reason=reason, **fields
    )


def _cannot_run(kind: str, exc: BaseException, limit_bps: int, **fields: Any) -> RoundTrip:
    what = str(exc) if isinstance(exc, DefiagentError) else f"{type(exc).__name__}: {exc}"
    return _failed(
        kind,
        f"the round-trip probe could not run, so the buy is refused: {what}"[:600],
        limit_bps,
        **fields,
    )


class _Pinned:
    """Hold the fork at one block for the whole probe: sync once (as the simulator would),
    then simulate without syncing, under the fork's lock (the follower cannot move it)."""

    def __init__(self, sim: Simulator, outcomes: Sequence[SimulationOutcome] | None = None) -> None:
        self.sim = sim
        self.saved = sim.sync
        # The block the plan itself was simulated at: when the fork is still there, the
        # probe runs on it too (same block as the plan, and no head check on the send path).
        blocks = {o.block_number for o in outcomes or ()}
        self.plan_block = blocks.pop() if len(blocks) == 1 else None

    def __enter__(self) -> int:
        self.sim.fork.lock.acquire()
        try:
            at_plan = self.plan_block is not None and self.sim.fork.block_number == self.plan_block
            if self.sim.sync and not at_plan:
                self.sim.fork.sync()
            self.sim.sync = False
            block = self.sim.fork.block_number
            if block is None:
                raise InfraError("the simulation fork is not running")
            return block
        except BaseException:
            self.sim.sync = self.saved
            self.sim.fork.lock.release()
            raise

    def __exit__(self, *exc: object) -> None:
        self.sim.sync = self.saved
        self.sim.fork.lock.release()


def _buy_outcomes(
    sim: Simulator,
    buy_calls: Sequence[PlannedCall],
    buy_outcomes: Sequence[SimulationOutcome] | None,
    block: int,
) -> list[SimulationOutcome]:
    """The buy's outcomes at `block`: the plan's own simulation when it ran there, else anew."""
    if (
        buy_outcomes is not None
        and len(buy_outcomes) == len(buy_calls)
        and all(o.block_number == block for o in buy_outcomes)
    ):
        return list(buy_outcomes)
    return sim.simulate_sequence(list(buy_calls), trace=False)


def _buy_reverted(
    outcomes: Sequence[SimulationOutcome], calls: Sequence[PlannedCall]
) -> str | None:
    for call, o in zip(calls, outcomes, strict=True):
        if not o.success:
            what = call.description or call.intent_kind
            return f"the buy itself reverts on the fork ({what}: {_why(o)})"
    return None


# ------------------------------------------------------------------------------ swaps


def probe_round_trip(
    simulator_or_fork: Simulator | ForkManager,
    agent: str,
    router: str,
    buy_calls: Sequence[PlannedCall],
    token_in: str,
    token_out: str,
    path: Sequence[str] | None = None,
    *,
    limit_bps: int = DEFAULT_MAX_LOSS_BPS,
    buy_outcomes: Sequence[SimulationOutcome] | None = None,
    pairs: Sequence[str] | None = None,
) -> RoundTrip:
    """Buy `token_out` with `buy_calls` (the last one the router swap), sell what it delivered
    back to `token_in` along the reverse of `path` through `router`, and judge the loss.

    `path` defaults to the last buy call's; `pairs` (one per hop) to the router factory's.
    `buy_outcomes`: the plan's own simulation, reused when it ran on the probe's block.
    Never raises: a probe that cannot run is a refusal with the reason.
    """
    fields: dict[str, Any] = {"token": token_out, "back_token": token_in}
    try:
        fields["token"] = to_checksum_address(token_out)
        fields["back_token"] = to_checksum_address(token_in)
        if not buy_calls:
            raise ProbeError("there is no buy to probe")
        if path is None:
            path = _swap_path(buy_calls[-1])
        fields["path"] = [to_checksum_address(a) for a in path]
        return _probe_swap(
            _simulator(simulator_or_fork),
            to_checksum_address(agent),
            to_checksum_address(router),
            list(buy_calls),
            fields["path"],
            limit_bps=limit_bps,
            buy_outcomes=buy_outcomes,
            pairs=pairs,
        )
    except Exception as exc:  # fail closed: whatever stopped the probe refuses the buy
        log.warning("round-trip probe could not run: %s", exc)
        return _cannot_run("swap", exc, limit_bps, **fields)


def _measure_buy(
    sim: Simulator,
    buys: Sequence[SimulationOutcome],
    token_in: str,
    token_out: str,
    limit_bps: int,
    fields: dict[str, Any],
) -> RoundTrip | None:
    """What the buy delivered and spent, into `fields`; the failed probe when it delivered
    nothing. A buy that spends nothing cannot be judged (ProbeError)."""
    bought = _delta(buys, token_out)
    spent = -_delta(buys[-1:], token_in)
    fields.update(bought=max(bought, 0), spent=max(spent, 0))
    if bought <= 0:
        what = f"the buy delivers no {_symbol(sim, token_out)} to the agent on the fork"
        return _failed("swap", what, limit_bps, **fields)
    if spent <= 0:
        raise ProbeError(f"the buy spends no {_symbol(sim, token_in)}")
    return None


def _swap_path(call: PlannedCall) -> list[str]:
    selector = selector_of(call.data)
    signature = {
        _SWAP_EXACT_IN: SWAP_EXACT_IN,
        _SWAP_EXACT_OUT: SWAP_EXACT_OUT,
        _SWAP_EXACT_IN_FOT: SWAP_EXACT_IN_FOT,
    }.get(selector)
    if signature is None:
        raise ProbeError(f"the buy's last call ({selector}) is not a router swap")
    return list(decode_call(signature, call.data).get("path"))


def _probe_swap(
    sim: Simulator,
    agent: str,
    router: str,
    buy_calls: list[PlannedCall],
    path: list[str],
    *,
    limit_bps: int,
    buy_outcomes: Sequence[SimulationOutcome] | None,
    pairs: Sequence[str] | None,
) -> RoundTrip:
    if len(path) < 2:
        raise ProbeError("the swap path has fewer than two tokens")
    token_in, token_out = path[0], path[-1]
    hops = len(path) - 1
    fields: dict[str, Any] = {
        "token": token_out,
        "back_token": token_in,
        "path": path,
        "router": router,
        "fees_bps": round(10_000 * (1 - (997 / 1000) ** (2 * hops)), 2),
    }
    name = _symbol(sim, token_out)
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
        back = list(reversed(path))
        fee_on_transfer = selector_of(buy_calls[-1].data) == _SWAP_EXACT_IN_FOT
        sell_swap = SWAP_EXACT_IN_FOT if fee_on_transfer else SWAP_EXACT_IN
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
                data=encode_call(sell_swap, [bought, 0, back, agent, _deadline(sim.fork)]),
                sender=agent,
                expected=[
                    ExpectedDelta(token=token_out, min_delta=-bought),
                    ExpectedDelta(token=token_in, min_delta=0),
                ],
                description=f"sell {_fmt(sim, token_out, bought)} back",
            ),
        ]
        outcomes = _sell(sim, buy_calls, token_out, router, agent, sell)
        pairs = (
            [to_checksum_address(x) for x in pairs]
            if pairs
            else _pairs(sim.fork, tag, router, path)
        )
        fields["pools"] = pairs
        reserves = _reserves(sim.fork, tag, pairs, path)
    unsold = _unsold(
        sim,
        name,
        buy_calls,
        outcomes,
        sell_swap.split("(")[0],
        block=block,
        limit_bps=limit_bps,
        fields=fields,
    )
    if unsold is not None:
        return unsold
    sold_back = fields["sold_back"]
    if fee_on_transfer:
        return _judge_fee_on_transfer(
            sim, name, limit_bps, fields, buys[-1], buy_calls[-1], reserves, pairs
        )
    # Exact V2 math from the reserves at the block: the buy as the router computes it, the
    # pools moved by it, then the sale of what an honest token would have delivered.
    if selector_of(buy_calls[-1].data) == _SWAP_EXACT_OUT:
        wanted = decode_call(SWAP_EXACT_OUT, buy_calls[-1].data).get("amountOut")
        amounts = _amounts_in(wanted, reserves)
    else:
        amounts = _amounts_out(spent, reserves)
    moved = _after(reserves, amounts)
    back_reserves = [(r_out, r_in) for r_in, r_out in reversed(moved)]
    expected_back = _amounts_out(amounts[-1], back_reserves)[-1]
    fields.update(
        back_token=token_in,
        sold_back=sold_back,
        expected_back=expected_back,
        expected_loss_bps=_bps(spent - expected_back, spent),
    )
    return _judge(sim, "swap", name, limit_bps, fields)


def _sell(
    sim: Simulator,
    buy_calls: Sequence[PlannedCall],
    token: str,
    router: str,
    agent: str,
    sell: Sequence[PlannedCall],
) -> list[SimulationOutcome]:
    """The buy, then `sell` (approve the router for what it bought, then the sale back), in
    one simulated block: the buy's outcomes first, the approve's and the sale's last."""
    outcomes = sim.simulate_sequence([*buy_calls, *sell], trace=False)
    if (
        not outcomes[len(buy_calls)].success
        and _buy_reverted(outcomes[: len(buy_calls)], buy_calls) is None
    ):
        # An approve that reverts may be a USDT-style token with an allowance left: as
        # the planner would, reset it to 0 first and try again (only then: no extra
        # round trip for every other token).
        again = sim.simulate_sequence(
            [*buy_calls, _reset(token, router, agent), *sell], trace=False
        )
        if again[len(buy_calls)].success:
            outcomes = again
    return outcomes


def _unsold(
    sim: Simulator,
    name: str,
    buy_calls: Sequence[PlannedCall],
    outcomes: Sequence[SimulationOutcome],
    function: str,
    *,
    block: int,
    limit_bps: int,
    fields: dict[str, Any],
) -> RoundTrip | None:
    """The failed round trip when the buy, the approve or the sale (`function`, the router's)
    reverted on the fork, or the sale returned nothing of `fields["back_token"]`; else None,
    with `fields["sold_back"]` set to what the sale returned. `outcomes` as `_sell` made them
    (the buy's, then the approve's, the sale's last)."""
    token_in, token_out = fields["back_token"], fields["token"]
    reverted = _buy_reverted(outcomes[: len(buy_calls)], buy_calls)
    if reverted:
        return _failed("swap", f"{name}: {reverted}", limit_bps, **fields)
    approve_out, sell_out = outcomes[-2], outcomes[-1]
    bought, spent = fields["bought"], fields["spent"]
    what = f"{_fmt(sim, token_out, bought)} bought for {_fmt(sim, token_in, spent)}"
    if not approve_out.success:
        return _failed(
            "swap",
            f"{name} cannot be sold: approving the router for the {what} reverts on the fork "
            f"({_why(approve_out)})",
            limit_bps,
            **fields,
        )
    if not sell_out.success:
        return _failed(
            "swap",
            f"{name} cannot be sold: selling the {what} back through the router "
            f"({function}) reverts on the fork at block {block} ({_why(sell_out)})",
            limit_bps,
            **fields,
        )
    sold_back = _delta([sell_out], token_in)
    fields["sold_back"] = max(sold_back, 0)
    if sold_back <= 0:
        return _failed(
            "swap",
            f"{name} cannot be sold: selling the {what} back returns nothing",
            limit_bps,
            **fields,
        )
    return None


def _reset(token: str, router: str, agent: str) -> PlannedCall:
    """The approve to 0 the planner puts before an approve when an allowance is left."""
    return PlannedCall(
        intent_id="round-trip-probe",
        intent_kind="approve",
        target=token,
        data=encode_call(APPROVE, [router, 0]),
        sender=agent,
        allowed_approvals={f"{token}:{router}": 0},
        step="reset-allowance",
        description="reset the router's allowance to 0 before approving it",
    )


def _pool_amounts(outcome: SimulationOutcome, pool: str) -> tuple[int, int] | None:
    """(what `pool` received, what it paid) from its one Swap event in `outcome`'s logs. A
    one-way swap has one side of each pair of amounts zero, so the larger one is the one."""
    events = [
        log
        for log in outcome.logs
        if log.topics
        and log.topics[0].lower() == _V2_SWAP_EVENT
        and log.address.lower() == pool.lower()
    ]
    if len(events) != 1:
        return None
    raw = events[0].data.removeprefix("0x")
    if len(raw) < 256:
        return None
    in0, in1, out0, out1 = (int(raw[64 * i : 64 * (i + 1)], 16) for i in range(4))
    return max(in0, in1), max(out0, out1)


def _judge_fee_on_transfer(
    sim: Simulator,
    name: str,
    limit_bps: int,
    fields: dict[str, Any],
    buy: SimulationOutcome,
    buy_call: PlannedCall,
    reserves: Sequence[tuple[int, int]],
    pairs: Sequence[str],
) -> RoundTrip:
    """The round trip of a token bought as fee-on-transfer: its fee measured on the buy must
    be within the declared one, and the sale may lose that share again, nothing more."""
    token, spent, bought = fields["token"], fields["spent"], fields["bought"]
    hops = [_pool_amounts(buy, pair) for pair in pairs]
    if any(h is None for h in hops):
        raise ProbeError("the buy's pools emitted no Swap event to measure the transfer fee by")
    amounts = [h for h in hops if h is not None]
    paid = amounts[-1][1]
    if paid <= 0 or bought > paid:
        raise ProbeError(f"the last pool paid {paid} but the agent received {bought}")
    fee_bps = _bps(paid - bought, paid)
    declared = _declared_fee(buy_call, token)
    if declared is None or fee_bps > declared:
        what = "declares none" if declared is None else f"declares at most {declared}"
        return _failed(
            "swap",
            f"{name} keeps {fee_bps:g} bps of the transfer to the agent on the buy, but its "
            f"allowlist entry {what}",
            limit_bps,
            **fields,
        )
    # The pools after the buy (by what they received and paid), then the sale: the token's
    # transfer into the first pool keeps the same share as on the buy (bought / paid reach it).
    moved = [
        (r_in + got, r_out - out)
        for (r_in, r_out), (got, out) in zip(reserves, amounts, strict=True)
    ]
    back_reserves = [(r_out, r_in) for r_in, r_out in reversed(moved)]
    expected_back = _amounts_out(bought * bought // paid, back_reserves)[-1]
    hop_count = len(pairs)
    kept = (bought / paid) ** 2
    fields.update(
        expected_back=expected_back,
        expected_loss_bps=_bps(spent - expected_back, spent),
        fees_bps=round(10_000 * (1 - (997 / 1000) ** (2 * hop_count) * kept), 2),
    )
    return _judge(sim, "swap", name, limit_bps, fields)


def _declared_fee(call: PlannedCall, token: str) -> int | None:
    for key, bps in call.transfer_fees.items():
        if key.lower() == token.lower():
            return bps
    return None


def _judge(
    sim: Simulator,
    kind: str,
    name: str,
    limit_bps: int,
    fields: dict[str, Any],
    *,
    source: tuple[str, str] = ("the reserves", "give"),
) -> RoundTrip:
    """Pass or fail on what came back (`fields`: back_token, sold_back, expected_back...).
    `source`: what the expected amount comes from, and its verb, for the reason."""
    back, sold_back, expected_back = (
        fields["back_token"],
        fields["sold_back"],
        fields["expected_back"],
    )
    if expected_back <= 0:
        raise ProbeError("the pools' math expects nothing back, so the loss cannot be judged")
    loss = _bps(expected_back - sold_back, expected_back)
    within = sold_back * 10_000 >= expected_back * (10_000 - limit_bps)
    got = _fmt(sim, back, sold_back)
    expected = _fmt(sim, back, expected_back)
    at = f"at block {fields.get('block_number')}"
    if within:
        reason = (
            f"{name} sells back: {got} returned of {expected} expected from {source[0]} {at}, "
            f"{max(loss, 0):g} bps beyond fees (limit {limit_bps})"
        )
    else:
        reason = (
            f"{name} loses {loss:g} bps beyond the pools' fees on a round trip (limit "
            f"{limit_bps}): selling back returned {got}, but {source[0]} {at} {source[1]} "
            f"{expected}"
        )
    return RoundTrip(
        kind=kind,
        sellable=True,
        passed=within,
        loss_bps_beyond_fees=loss,
        limit_bps=limit_bps,
        reason=reason,
        **fields,
    )


# ------------------------------------------------------------------------------ liquidity


def probe_liquidity_round_trip(
    simulator_or_fork: Simulator | ForkManager,
    agent: str,
    router: str,
    buy_calls: Sequence[PlannedCall],
    token_a: str,
    token_b: str,
    *,
    limit_bps: int = DEFAULT_MAX_LOSS_BPS,
    buy_outcomes: Sequence[SimulationOutcome] | None = None,
    pair: str | None = None,
) -> RoundTrip:
    """Add liquidity with `buy_calls` (the last one addLiquidity), remove the LP tokens it
    minted through `router`, and compare what comes back of each token with the pool's exact
    mint/burn math. The worse token is the one reported. Never raises."""
    fields: dict[str, Any] = {"path": [token_a, token_b]}
    try:
        a, b = to_checksum_address(token_a), to_checksum_address(token_b)
        fields["path"] = [a, b]
        if not buy_calls:
            raise ProbeError("there is no liquidity add to probe")
        if selector_of(buy_calls[-1].data) != _ADD_LIQUIDITY:
            raise ProbeError("the plan's last call is not addLiquidity")
        sim = _simulator(simulator_or_fork)
        return _probe_liquidity(
            sim,
            to_checksum_address(agent),
            to_checksum_address(router),
            list(buy_calls),
            a,
            b,
            limit_bps=limit_bps,
            buy_outcomes=buy_outcomes,
            pair=pair,
        )
    except Exception as exc:  # fail closed
        log.warning("round-trip probe could not run: %s", exc)
        return _cannot_run("liquidity", exc, limit_bps, **fields)


def _probe_liquidity(
    sim: Simulator,
    agent: str,
    router: str,
    buy_calls: list[PlannedCall],
    a: str,
    b: str,
    *,
    limit_bps: int,
    buy_outcomes: Sequence[SimulationOutcome] | None,
    pair: str | None,
) -> RoundTrip:
    fields: dict[str, Any] = {"path": [a, b], "router": router, "fees_bps": 0.0}
    with _Pinned(sim, buy_outcomes) as block:
        tag = hex(block)
        fields["block_number"] = block
        pair = to_checksum_address(pair) if pair else _pairs(sim.fork, tag, router, [a, b])[0]
        fields.update(token=pair, pools=[pair])
        name = f"the {_symbol(sim, a)}/{_symbol(sim, b)} pool's LP token"
        # The LP token must be measured: name it in the add's expected deltas if the plan
        # did not (the planner does).
        if not any(
            e.token and to_checksum_address(e.token) == pair for e in buy_calls[-1].expected
        ):
            last = buy_calls[-1]
            extra = [*last.expected, ExpectedDelta(token=pair, min_delta=0)]
            buy_calls = [*buy_calls[:-1], last.model_copy(update={"expected": extra})]
            buy_outcomes = None
        buys = _buy_outcomes(sim, buy_calls, buy_outcomes, block)
        reverted = _buy_reverted(buys, buy_calls)
        if reverted:
            return _failed("liquidity", f"{name}: {reverted}", limit_bps, **fields)
        liquidity = _delta(buys, pair)
        spent_a, spent_b = -_delta(buys[-1:], a), -_delta(buys[-1:], b)
        fields.update(bought=max(liquidity, 0))
        if liquidity <= 0:
            return _failed(
                "liquidity",
                f"the add delivers no LP token of {pair} on the fork",
                limit_bps,
                **fields,
            )
        if spent_a <= 0 or spent_b <= 0:
            raise ProbeError("the add spends nothing of one of the pool's tokens")
        remove = [
            PlannedCall(
                intent_id="round-trip-probe",
                intent_kind="approve",
                target=pair,
                data=encode_call(APPROVE, [router, liquidity]),
                sender=agent,
                allowed_approvals={f"{pair}:{router}": liquidity},
                description=f"approve the router for the {liquidity} LP tokens minted",
            ),
            PlannedCall(
                intent_id="round-trip-probe",
                intent_kind="remove-liquidity",
                target=router,
                data=encode_call(
                    REMOVE_LIQUIDITY, [a, b, liquidity, 0, 0, agent, _deadline(sim.fork)]
                ),
                sender=agent,
                expected=[
                    ExpectedDelta(token=pair, min_delta=-liquidity),
                    ExpectedDelta(token=a, min_delta=0),
                    ExpectedDelta(token=b, min_delta=0),
                ],
                description=f"remove the {liquidity} LP tokens",
            ),
        ]
        outcomes = sim.simulate_sequence([*buy_calls, *remove], trace=False)
        answers = _eth_call(
            sim.fork, tag, [(pair, _TOKEN0), (pair, _GET_RESERVES), (pair, _TOTAL_SUPPLY)]
        )
    approve_out, remove_out = outcomes[len(buy_calls)], outcomes[len(buy_calls) + 1]
    if not approve_out.success or not remove_out.success:
        failed = approve_out if not approve_out.success else remove_out
        return _failed(
            "liquidity",
            f"{name} cannot be redeemed: removing the {liquidity} LP tokens minted reverts on "
            f"the fork at block {block} ({_why(failed)})",
            limit_bps,
            **fields,
        )
    token0 = _address(answers[0])
    r0, r1, _ = abi_decode(["uint112", "uint112", "uint32"], answers[1][:96])
    supply = abi_decode(["uint256"], answers[2][:32])[0]
    r_a, r_b = (r0, r1) if token0 == a else (r1, r0)
    if r_a <= 0 or r_b <= 0 or supply <= 0:
        raise ProbeError(f"pool {pair} has no liquidity to measure the add against")
    # What an honest pair mints for the amounts the router took, then burns for it.
    minted = min(spent_a * supply // r_a, spent_b * supply // r_b)
    if minted <= 0:
        raise ProbeError("the add is too small to mint any LP token")
    back_a = _delta([remove_out], a)
    back_b = _delta([remove_out], b)
    exp_a = minted * (r_a + spent_a) // (supply + minted)
    exp_b = minted * (r_b + spent_b) // (supply + minted)
    if back_a <= 0 or back_b <= 0:
        token = a if back_a <= 0 else b
        fields.update(sold_back=max(min(back_a, back_b), 0), back_token=token)
        return _failed(
            "liquidity",
            f"{name} cannot be redeemed: removing the LP tokens returns no {_symbol(sim, token)}",
            limit_bps,
            **fields,
        )
    # The worse of the two tokens decides.
    if (exp_a - back_a) * exp_b >= (exp_b - back_b) * exp_a:
        token, got, expected, spent = a, back_a, exp_a, spent_a
    else:
        token, got, expected, spent = b, back_b, exp_b, spent_b
    fields.update(
        spent=spent,
        back_token=token,
        sold_back=got,
        expected_back=expected,
        expected_loss_bps=_bps(spent - expected, spent),
    )
    return _judge(sim, "liquidity", f"{name} ({_symbol(sim, token)})", limit_bps, fields)


# ------------------------------------------------------------------------------ the agent


def needs_probe(intent: Any, *, weth: str | None, numeraire: str | None) -> bool:
    """A buy: a swap whose token_out is neither the numeraire nor WETH (what the agent values
    and holds as money), or any add-liquidity (it acquires the pool's LP token)."""
    kind = getattr(intent, "kind", None)
    if kind == "add-liquidity":
        return True
    if kind not in _BUY_KINDS:
        return False
    out = str(getattr(intent, "token_out", "")).lower()
    money = {str(x).lower() for x in (weth, numeraire) if x}
    return out not in money


def check_plan_round_trip(
    simulator: Simulator,
    intent: Any,
    calls: Sequence[PlannedCall],
    outcomes: Sequence[SimulationOutcome] | None,
    *,
    agent: str,
    router: str,
    weth: str | None,
    numeraire: str | None,
    config: RoundTripConfig | None = None,
    addresses: ProtocolAddresses | None = None,
) -> tuple[RoundTrip, Verdict] | None:
    """The agent loop's step after a plan's simulation and outcome checks: None when the
    intent buys nothing (or the probe is disabled), else the probe and its verdict.

    The probe is the one of the protocol that planned the intent (the registry's route by
    kind and venue, its adapter's `round_trip` hook): Uniswap V2's below for its swaps and
    liquidity adds (`router`), Uniswap V3's (defiagent/protocols/uniswap_v3/round_trip.py)
    for a swap on venue "uniswap-v3", whose SwapRouter and QuoterV2 it reads from
    `addresses` (the planner's). A protocol without a probe cannot probe its buys: they are
    refused, as is anything that stops a probe from running."""
    config = config if config is not None else RoundTripConfig()
    if not config.enabled or not needs_probe(intent, weth=weth, numeraire=numeraire):
        return None
    request = RoundTripRequest(
        intent=intent,
        calls=list(calls),
        outcomes=None if outcomes is None else list(outcomes),
        agent=agent,
        router=router,
        addresses=addresses,
        limit_bps=config.max_round_trip_loss_bps,
    )
    probe = _protocol_probe(simulator, request)
    return probe, RoundTripSellable(config).judge(probe)


def _protocol_probe(simulator: Simulator, request: RoundTripRequest) -> RoundTrip:
    """The probe of the protocol that planned the intent; never raises."""
    intent, limit = request.intent, request.limit_bps
    kind: Literal["swap", "liquidity"] = "liquidity" if intent.kind == "add-liquidity" else "swap"
    fields: dict[str, Any] = {}
    if kind == "swap":
        fields = {
            "token": getattr(intent, "token_out", None),
            "back_token": getattr(intent, "token_in", None),
        }
    try:
        adapter = registry.route(intent)
        probe = adapter.round_trip(simulator, request)
        if probe is None:
            raise ProbeError(
                f"{adapter.title} has no round-trip probe, so a buy it plans cannot be checked"
            )
        return probe
    except Exception as exc:  # fail closed: whatever stopped the probe refuses the buy
        log.warning("round-trip probe could not run: %s", exc)
        return _cannot_run(kind, exc, limit, **fields)


def probe_v2_plan(simulator: Simulator, request: RoundTripRequest) -> RoundTrip:
    """Uniswap V2's probe of a buy it planned (its adapter's `round_trip` hook): the swap's
    round trip through `request.router` along the reverse of its path, or the liquidity
    add's through removeLiquidity. Never raises."""
    intent = request.intent
    if isinstance(intent, AddLiquidity):
        return probe_liquidity_round_trip(
            simulator,
            request.agent,
            request.router,
            request.calls,
            intent.token_a,
            intent.token_b,
            limit_bps=request.limit_bps,
            buy_outcomes=request.outcomes,
        )
    if not isinstance(intent, SwapExactIn | SwapExactOut):
        return _cannot_run(
            "swap",
            ProbeError(f"a {intent.kind} is not a buy Uniswap V2 can probe"),
            request.limit_bps,
        )
    return probe_round_trip(
        simulator,
        request.agent,
        request.router,
        request.calls,
        intent.token_in,
        intent.token_out,
        limit_bps=request.limit_bps,
        buy_outcomes=request.outcomes,
    )


# ------------------------------------------------------------------------------ propose


def probe_token(
    rpc_url: str,
    token: str,
    pool: str,
    router: str,
    *,
    limit_bps: int = DEFAULT_MAX_LOSS_BPS,
    block_number: int | None = None,
    log_dir: Path | None = None,
    rpc_timeout: float = 10.0,
) -> RoundTrip:
    """`allowlist propose --probe-pool`: the round trip of `token` on a throwaway anvil fork
    of `rpc_url`, from a funded, impersonated probe account that wraps ETH into the router's
    WETH and buys through `pool` (via the WETH pool of the pool's other token when that is
    not WETH). `block_number`: fork there (default: the head). Nothing is sent to `rpc_url`.
    Never raises: failing to run is a FAIL."""
    fields: dict[str, Any] = {"token": token, "router": router, "pools": [pool]}
    fork = ForkManager(rpc_url, block_number=block_number, log_dir=log_dir, rpc_timeout=rpc_timeout)
    try:
        token = to_checksum_address(token)
        fields["token"] = token
        pool, router = to_checksum_address(pool), to_checksum_address(router)
        fork.start()
        sim = Simulator(fork, sync=False, prefetch=False)
        return _probe_token(sim, token, pool, router, limit_bps=limit_bps)
    except Exception as exc:  # fail closed
        log.warning("round-trip probe could not run: %s", exc)
        return _cannot_run("swap", exc, limit_bps, **fields)
    finally:
        fork.stop()


def _probe_token(
    sim: Simulator, token: str, pool: str, router: str, *, limit_bps: int
) -> RoundTrip:
    fork = sim.fork
    tag = hex(fork.block_number or 0)
    weth_raw, t0_raw, t1_raw = _eth_call(
        fork, tag, [(router, _WETH), (pool, _TOKEN0), (pool, _TOKEN1)]
    )
    weth, token0, token1 = _address(weth_raw), _address(t0_raw), _address(t1_raw)
    if token not in (token0, token1):
        raise ProbeError(f"pool {pool} does not hold {token} (it holds {token0} and {token1})")
    other = token1 if token == token0 else token0
    if token == weth:
        raise ProbeError("the token is the router's WETH: there is nothing to buy it with")
    if other == weth:
        path, pairs = [weth, token], [pool]
    else:
        path = [weth, other, token]
        pairs = [_pairs(fork, tag, router, [weth, other])[0], pool]
    reserves = _reserves(fork, tag, pairs, path)
    # About 0.1% of the token pool's depth on the side it is bought with.
    target = max(reserves[-1][0] // PROBE_SHARE_DIVISOR, 1)
    if len(reserves) == 1:
        amount_in = target
    else:
        try:
            amount_in = v2.get_amount_in(target, *reserves[0])
        except ValueError:
            amount_in = max(reserves[0][0] // PROBE_SHARE_DIVISOR, 1)
    account = PROBE_ACCOUNT
    fork.rpc.call("anvil_impersonateAccount", account)
    fork.rpc.call("anvil_setBalance", account, hex(amount_in + 10**18))
    buy = [
        PlannedCall(
            intent_id="round-trip-probe",
            intent_kind="wrap",
            target=weth,
            data=encode_call(DEPOSIT, []),
            value=amount_in,
            sender=account,
            expected=[ExpectedDelta(token=weth, min_delta=amount_in)],
            description="wrap ETH for the probe",
        ),
        PlannedCall(
            intent_id="round-trip-probe",
            intent_kind="approve",
            target=weth,
            data=encode_call(APPROVE, [router, amount_in]),
            sender=account,
            allowed_approvals={f"{weth}:{router}": amount_in},
            description="approve the router for the probe's WETH",
        ),
        PlannedCall(
            intent_id="round-trip-probe",
            intent_kind="swap-exact-in",
            target=router,
            data=encode_call(SWAP_EXACT_IN, [amount_in, 0, path, account, _deadline(fork)]),
            sender=account,
            expected=[
                ExpectedDelta(token=weth, min_delta=-amount_in),
                ExpectedDelta(token=token, min_delta=0),
            ],
            description="buy the token",
        ),
    ]
    return _probe_swap(
        sim, account, router, buy, path, limit_bps=limit_bps, buy_outcomes=None, pairs=pairs
    )


__all__ = [
    "PROBE_ACCOUNT",
    "RULE",
    "ProbeError",
    "RoundTrip",
    "RoundTripConfig",
    "check_plan_round_trip",
    "needs_probe",
    "probe_liquidity_round_trip",
    "probe_round_trip",
    "probe_token",
    "probe_v2_plan",
]
