"""Uniswap V2 Router02 plans: swaps (exact in/out, direct, through WETH or `via`) and
liquidity. A router allowance too small is topped up first by an approve of exactly the
amount needed. No policy here: a foreign recipient is encoded as asked; the guard decides.
"""

from __future__ import annotations

from defiagent.execution.models import ExpectedDelta, PlannedCall
from defiagent.guard.calldata import encode_call
from defiagent.market.models import MarketSnapshot, PortfolioSnapshot
from defiagent.protocols.base import PlanningError, ProtocolPlanner
from defiagent.protocols.erc20.planner import approval_if_needed
from defiagent.protocols.planning import call, deadline, fmt, symbol
from defiagent.protocols.uniswap_v2.functions import (
    ADD_LIQUIDITY,
    REMOVE_LIQUIDITY,
    SWAP_EXACT_IN,
    SWAP_EXACT_IN_FOT,
    SWAP_EXACT_OUT,
)
from defiagent.protocols.uniswap_v2.intents import AddLiquidity, RemoveLiquidity
from defiagent.strategy.intent_base import IntentBase, Swap, SwapExactIn, SwapExactOut

NAME = "uniswap-v2"


class UniswapV2Planner(ProtocolPlanner):
    @property
    def router(self) -> str:
        return self.ctx.addresses.router

    def plan(
        self, intent: IntentBase, market: MarketSnapshot, portfolio: PortfolioSnapshot
    ) -> list[PlannedCall]:
        if isinstance(intent, SwapExactIn):
            return self._swap_exact_in(intent, market, portfolio)
        if isinstance(intent, SwapExactOut):
            return self._swap_exact_out(intent, market, portfolio)
        if isinstance(intent, AddLiquidity):
            return self._add_liquidity(intent, market, portfolio)
        if isinstance(intent, RemoveLiquidity):
            return self._remove_liquidity(intent, market, portfolio)
        raise PlanningError(f"intent kind {intent.kind!r} is not a Uniswap V2 intent")

    def _recipient(self, intent: Swap | AddLiquidity | RemoveLiquidity) -> str:
        return intent.recipient or self.agent

    def _path(self, i: Swap, market: MarketSnapshot) -> list[str]:
        if i.fees is not None:
            raise PlanningError(
                f"{NAME} has no fee tiers, so a swap on it must leave fees out "
                f"(got {i.fees}); fee tiers are for uniswap-v3"
            )
        if i.via:
            path = [i.token_in, *i.via, i.token_out]
            if len(set(path)) != len(path):
                raise PlanningError("the swap's path visits a token twice (check via)")
            return path
        # A direct pool, else one hop through WETH; with neither, the direct path is still
        # planned so the guard can say why it is refused.
        weth = self.ctx.addresses.weth
        return market.route(i.token_in, i.token_out, via=weth) or [i.token_in, i.token_out]

    def _swap_exact_in(
        self, i: SwapExactIn, market: MarketSnapshot, portfolio: PortfolioSnapshot
    ) -> list[PlannedCall]:
        path = self._path(i, market)
        calls = approval_if_needed(
            i, self.agent, i.token_in, self.router, i.amount_in, market, portfolio
        )
        # A token on the path whose entry declares a transfer fee: the plain swap would hand
        # each pool less than the router computed with (UniswapV2: K) or the agent less than
        # it checked; the router's fee-on-transfer twin swaps what each pool really received
        # and checks the min-out against the balance the recipient really gained.
        fees = {t: fee for t in path if (fee := self.ctx.transfer_fee(t)) is not None}
        data = encode_call(
            SWAP_EXACT_IN_FOT if fees else SWAP_EXACT_IN,
            [i.amount_in, i.min_amount_out, path, self._recipient(i), deadline(i, market)],
        )
        calls.append(
            call(
                i,
                self.agent,
                self.router,
                data,
                expected=[
                    ExpectedDelta(token=i.token_in, min_delta=-i.amount_in),
                    ExpectedDelta(token=i.token_out, min_delta=i.min_amount_out),
                ],
                transfer_fees=fees,
                description=(
                    f"swap {fmt(market, i.token_in, i.amount_in)} for at least "
                    f"{fmt(market, i.token_out, i.min_amount_out)}"
                ),
            )
        )
        return calls

    def _swap_exact_out(
        self, i: SwapExactOut, market: MarketSnapshot, portfolio: PortfolioSnapshot
    ) -> list[PlannedCall]:
        path = self._path(i, market)
        taxed = [t for t in path if self.ctx.transfer_fee(t) is not None]
        if taxed:
            # Router02 has no fee-on-transfer twin of an exact-out swap: a fee makes the
            # exact amount unreachable (the agent gets less, or the pool does and reverts).
            raise PlanningError(
                f"{symbol(market, taxed[0])} keeps a fee on every transfer, so no exact-out "
                "swap can buy or pay an exact amount of it; use swap-exact-in"
            )
        calls = approval_if_needed(
            i, self.agent, i.token_in, self.router, i.max_amount_in, market, portfolio
        )
        data = encode_call(
            SWAP_EXACT_OUT,
            [i.amount_out, i.max_amount_in, path, self._recipient(i), deadline(i, market)],
        )
        calls.append(
            call(
                i,
                self.agent,
                self.router,
                data,
                expected=[
                    ExpectedDelta(token=i.token_in, min_delta=-i.max_amount_in),
                    ExpectedDelta(token=i.token_out, min_delta=i.amount_out),
                ],
                description=(
                    f"buy {fmt(market, i.token_out, i.amount_out)} for at most "
                    f"{fmt(market, i.token_in, i.max_amount_in)}"
                ),
            )
        )
        return calls

    def _add_liquidity(
        self, i: AddLiquidity, market: MarketSnapshot, portfolio: PortfolioSnapshot
    ) -> list[PlannedCall]:
        pool = market.pool_for(i.token_a, i.token_b)
        if pool is None:
            raise PlanningError(
                f"no known pool for {symbol(market, i.token_a)}/"
                f"{symbol(market, i.token_b)}; creating pools is not supported"
            )
        calls = approval_if_needed(
            i, self.agent, i.token_a, self.router, i.amount_a, market, portfolio
        )
        calls += approval_if_needed(
            i, self.agent, i.token_b, self.router, i.amount_b, market, portfolio
        )
        data = encode_call(
            ADD_LIQUIDITY,
            [
                i.token_a,
                i.token_b,
                i.amount_a,
                i.amount_b,
                i.min_amount_a,
                i.min_amount_b,
                self._recipient(i),
                deadline(i, market),
            ],
        )
        calls.append(
            call(
                i,
                self.agent,
                self.router,
                data,
                expected=[
                    ExpectedDelta(token=i.token_a, min_delta=-i.amount_a),
                    ExpectedDelta(token=i.token_b, min_delta=-i.amount_b),
                    ExpectedDelta(token=pool.address, min_delta=1),
                ],
                description=(
                    f"add liquidity: up to {fmt(market, i.token_a, i.amount_a)} and "
                    f"{fmt(market, i.token_b, i.amount_b)}"
                ),
            )
        )
        return calls

    def _remove_liquidity(
        self, i: RemoveLiquidity, market: MarketSnapshot, portfolio: PortfolioSnapshot
    ) -> list[PlannedCall]:
        pool = market.pool_for(i.token_a, i.token_b)
        if pool is None:
            raise PlanningError(
                f"no known pool for {symbol(market, i.token_a)}/{symbol(market, i.token_b)}"
            )
        calls = approval_if_needed(
            i, self.agent, pool.address, self.router, i.liquidity, market, portfolio
        )
        data = encode_call(
            REMOVE_LIQUIDITY,
            [
                i.token_a,
                i.token_b,
                i.liquidity,
                i.min_amount_a,
                i.min_amount_b,
                self._recipient(i),
                deadline(i, market),
            ],
        )
        calls.append(
            call(
                i,
                self.agent,
                self.router,
                data,
                expected=[
                    ExpectedDelta(token=pool.address, min_delta=-i.liquidity),
                    ExpectedDelta(token=i.token_a, min_delta=i.min_amount_a),
                    ExpectedDelta(token=i.token_b, min_delta=i.min_amount_b),
                ],
                description=f"remove {i.liquidity} LP tokens of {pool.address[:10]}…",
            )
        )
        return calls
