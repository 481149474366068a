"""Uniswap V3 SwapRouter plans: exact-in and exact-out, one pool or several.

A swap names its fee tier per hop (`fees`) and, for several hops, the tokens between
(`via`): exactInputSingle / exactOutputSingle for one hop, exactInput / exactOutput with a
packed path (reversed for exact-out, as the router takes it) for more. The router's
allowance is topped up first by an approve of exactly what the swap may spend. No policy
here: a foreign recipient or a weak min-out is encoded as asked; the guard decides.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from defiagent.execution.models import ExpectedDelta, PlannedCall
from defiagent.guard.calldata import encode_call
from defiagent.guard.packed_path import encode_path
from defiagent.market.models import MarketSnapshot, PortfolioSnapshot
from defiagent.protocols.base import PlanContext, PlanningError, ProtocolPlanner
from defiagent.protocols.erc20.planner import approval_if_needed
from defiagent.protocols.planning import call, deadline, fmt
from defiagent.protocols.uniswap_v3.functions import (
    EXACT_INPUT,
    EXACT_INPUT_SINGLE,
    EXACT_OUTPUT,
    EXACT_OUTPUT_SINGLE,
)
from defiagent.protocols.uniswap_v3.pool_math import FEE_TIERS
from defiagent.strategy.intent_base import IntentBase, Swap, SwapExactIn, SwapExactOut
from defiagent.types import Address

NAME = "uniswap-v3"


class UniswapV3Settings(BaseModel):
    """The [protocols.uniswap-v3] table of agent.toml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    router: Address  # SwapRouter
    quoter: Address  # QuoterV2: the quotes the slippage bound is measured against
    factory: Address | None = None  # UniswapV3Factory (pinned on the allowlist beside them)
    position_manager: Address | None = None
    twap_window_seconds: int = Field(default=60, gt=0, le=86_400)
    # The pools whose spot is checked against their own observe() TWAP in every snapshot:
    # a V3 swap through a pool not listed has no price check, so price-sane refuses it.
    pools: list[Address] = Field(default=[], max_length=64)


def settings_of(ctx: PlanContext) -> UniswapV3Settings:
    raw = ctx.addresses.sections.get(NAME)
    if raw is None:
        raise PlanningError(
            f"{NAME} is not configured: agent.toml has no [protocols.{NAME}] table "
            "(router and quoter)"
        )
    try:
        return UniswapV3Settings.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise PlanningError(f"[protocols.{NAME}] {where}: {first['msg']}") from None


class Route(BaseModel):
    model_config = ConfigDict(frozen=True)

    tokens: list[str]  # first sold, last bought
    fees: list[int]


def route_of(i: Swap) -> Route:
    """The swap's tokens and fee tiers, checked for shape (the pools' existence is the
    quoter's to find: it cannot quote a pool that does not exist)."""
    tokens = [i.token_in, *i.via, i.token_out]
    if len(set(tokens)) != len(tokens):
        raise PlanningError("the swap's path visits a token twice (check via)")
    if i.fees is None:
        raise PlanningError(
            f"a {NAME} swap needs its fee tier per hop in fees (e.g. [3000]); "
            f"it has {len(tokens) - 1} hop(s)"
        )
    if len(i.fees) != len(tokens) - 1:
        raise PlanningError(
            f"the swap has {len(tokens) - 1} hop(s) but {len(i.fees)} fee tier(s) in fees"
        )
    unknown = [f for f in i.fees if f not in FEE_TIERS]
    if unknown:
        tiers = ", ".join(map(str, FEE_TIERS))
        raise PlanningError(f"fee tier {unknown[0]} is not a {NAME} tier ({tiers})")
    return Route(tokens=tokens, fees=list(i.fees))


class UniswapV3Planner(ProtocolPlanner):
    def plan(
        self, intent: IntentBase, market: MarketSnapshot, portfolio: PortfolioSnapshot
    ) -> list[PlannedCall]:
        if isinstance(intent, SwapExactIn):
            return self._exact_in(intent, market, portfolio)
        if isinstance(intent, SwapExactOut):
            return self._exact_out(intent, market, portfolio)
        raise PlanningError(f"intent kind {intent.kind!r} is not a {NAME} intent")

    def _exact_in(
        self, i: SwapExactIn, market: MarketSnapshot, portfolio: PortfolioSnapshot
    ) -> list[PlannedCall]:
        s, route = settings_of(self.ctx), route_of(i)
        recipient, until = i.recipient or self.agent, deadline(i, market)
        if len(route.fees) == 1:
            data = encode_call(
                EXACT_INPUT_SINGLE,
                [
                    (
                        i.token_in,
                        i.token_out,
                        route.fees[0],
                        recipient,
                        until,
                        i.amount_in,
                        i.min_amount_out,
                        0,
                    )
                ],
            )
        else:
            path = encode_path(route.tokens, route.fees)
            data = encode_call(
                EXACT_INPUT, [(path, recipient, until, i.amount_in, i.min_amount_out)]
            )
        calls = approval_if_needed(
            i,
            self.agent,
            i.token_in,
            s.router,
            i.amount_in,
            market,
            portfolio,
            spender_name="the Uniswap V3 router",
        )
        calls.append(
            call(
                i,
                self.agent,
                s.router,
                data,
                expected=[
                    ExpectedDelta(token=i.token_in, min_delta=-i.amount_in),
                    ExpectedDelta(token=i.token_out, min_delta=i.min_amount_out),
                ],
                description=(
                    f"swap {fmt(market, i.token_in, i.amount_in)} for at least "
                    f"{fmt(market, i.token_out, i.min_amount_out)} on {NAME} "
                    f"(fees {'/'.join(map(str, route.fees))})"
                ),
            )
        )
        return calls

    def _exact_out(
        self, i: SwapExactOut, market: MarketSnapshot, portfolio: PortfolioSnapshot
    ) -> list[PlannedCall]:
        s, route = settings_of(self.ctx), route_of(i)
        recipient, until = i.recipient or self.agent, deadline(i, market)
        if len(route.fees) == 1:
            data = encode_call(
                EXACT_OUTPUT_SINGLE,
                [
                    (
                        i.token_in,
                        i.token_out,
                        route.fees[0],
                        recipient,
                        until,
                        i.amount_out,
                        i.max_amount_in,
                        0,
                    )
                ],
            )
        else:
            # exactOutput takes the path reversed: the token bought first.
            path = encode_path(route.tokens[::-1], route.fees[::-1])
            data = encode_call(
                EXACT_OUTPUT, [(path, recipient, until, i.amount_out, i.max_amount_in)]
            )
        calls = approval_if_needed(
            i,
            self.agent,
            i.token_in,
            s.router,
            i.max_amount_in,
            market,
            portfolio,
            spender_name="the Uniswap V3 router",
        )
        calls.append(
            call(
                i,
                self.agent,
                s.router,
                data,
                expected=[
                    ExpectedDelta(token=i.token_in, min_delta=-i.max_amount_in),
                    ExpectedDelta(token=i.token_out, min_delta=i.amount_out),
                ],
                description=(
                    f"buy {fmt(market, i.token_out, i.amount_out)} for at most "
                    f"{fmt(market, i.token_in, i.max_amount_in)} on {NAME} "
                    f"(fees {'/'.join(map(str, route.fees))})"
                ),
            )
        )
        return calls
