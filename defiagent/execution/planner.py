"""The planner: an Intent becomes the concrete call(s) that carry it out.

Uniswap V2 Router02 for swaps and liquidity, WETH9 for wrap/unwrap, ERC-20 `approve`.
A swap or liquidity change whose router allowance is too small is preceded by an approve
for exactly the amount needed, never more. The planner applies no policy: it encodes what
the intent says (a foreign recipient included) and the guard decides.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict

from defiagent.errors import Refused
from defiagent.execution.models import ExpectedDelta, PlannedCall
from defiagent.guard.calldata import encode_call
from defiagent.market.models import MarketSnapshot, PortfolioSnapshot
from defiagent.strategy.intents import (
    AddLiquidity,
    Approve,
    Intent,
    RawCall,
    RemoveLiquidity,
    SwapExactIn,
    SwapExactOut,
    Unwrap,
    Wrap,
)
from defiagent.types import Address

APPROVE = "approve(address spender,uint256 amount)"
DEPOSIT = "deposit()"
WITHDRAW = "withdraw(uint256 wad)"
SWAP_EXACT_IN = (
    "swapExactTokensForTokens(uint256 amountIn,uint256 amountOutMin,address[] path,"
    "address to,uint256 deadline)"
)
SWAP_EXACT_OUT = (
    "swapTokensForExactTokens(uint256 amountOut,uint256 amountInMax,address[] path,"
    "address to,uint256 deadline)"
)
ADD_LIQUIDITY = (
    "addLiquidity(address tokenA,address tokenB,uint256 amountADesired,uint256 amountBDesired,"
    "uint256 amountAMin,uint256 amountBMin,address to,uint256 deadline)"
)
REMOVE_LIQUIDITY = (
    "removeLiquidity(address tokenA,address tokenB,uint256 liquidity,uint256 amountAMin,"
    "uint256 amountBMin,address to,uint256 deadline)"
)


# The intents that name a recipient (None: the agent itself).
_WithRecipient = SwapExactIn | SwapExactOut | AddLiquidity | RemoveLiquidity
# A handler of one intent kind: its intent, the market and the portfolio -> the calls.
_Handler = Callable[[Any, MarketSnapshot, PortfolioSnapshot], list[PlannedCall]]


class PlanningError(Refused):
    """The intent cannot be turned into calls (no pool, no balance): nothing is sent."""


class ProtocolAddresses(BaseModel):
    """The contracts the planner targets. Each must also be on the allowlist to be used."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    router: Address  # Uniswap V2 Router02 (or a fork with the same interface)
    weth: Address  # WETH9
    factory: Address | None = None


class Planner:
    def __init__(self, agent: str, protocols: ProtocolAddresses) -> None:
        self.agent = agent
        self.p = protocols

    def plan(
        self, intent: Intent, market: MarketSnapshot, portfolio: PortfolioSnapshot
    ) -> list[PlannedCall]:
        # Any: each handler takes the intent model of its own kind, which `kind` selects.
        handlers: dict[str, _Handler] = {
            "swap-exact-in": self._swap_exact_in,
            "swap-exact-out": self._swap_exact_out,
            "approve": self._approve,
            "wrap": self._wrap,
            "unwrap": self._unwrap,
            "add-liquidity": self._add_liquidity,
            "remove-liquidity": self._remove_liquidity,
            "raw-call": self._raw,
        }
        handler = handlers.get(intent.kind)
        if handler is None:
            raise PlanningError(f"intent kind {intent.kind!r} has no plan")
        return handler(intent, market, portfolio)

    # --- helpers -----------------------------------------------------------------------

    def _call(self, intent: Intent, target: str, data: str, **kw: Any) -> PlannedCall:
        return PlannedCall(
            intent_id=intent.id,
            intent_kind=intent.kind,
            target=target,
            data=data,
            sender=self.agent,
            **kw,
        )

    def _deadline(self, intent: Intent, market: MarketSnapshot) -> int:
        return market.block_timestamp + intent.deadline_seconds

    def _recipient(self, intent: _WithRecipient) -> str:
        return intent.recipient or self.agent

    def _symbol(self, market: MarketSnapshot, token: str) -> str:
        info = market.token(token)
        return info.symbol if info else token[:10]

    def _fmt(self, market: MarketSnapshot, token: str, amount: int) -> str:
        info = market.token(token)
        if info is None:
            return f"{amount} of {token[:10]}…"
        return f"{amount / 10**info.decimals:,.6g} {info.symbol}"

    def _approval_if_needed(
        self,
        intent: Intent,
        token: str,
        spender: str,
        needed: int,
        market: MarketSnapshot,
        portfolio: PortfolioSnapshot,
    ) -> list[PlannedCall]:
        if portfolio.allowance(token, spender) >= needed:
            return []
        return [
            self._call(
                intent,
                token,
                encode_call(APPROVE, [spender, needed]),
                allowed_approvals={f"{token}:{spender}": needed},
                description=f"approve the router for exactly {self._fmt(market, token, needed)}",
            )
        ]

    def _path(self, market: MarketSnapshot, token_in: str, token_out: str) -> list[str]:
        # A direct pool, else one hop through WETH; with neither, the direct path is still
        # planned so the guard can say why it is refused.
        return market.route(token_in, token_out, via=self.p.weth) or [token_in, token_out]

    # --- intents -----------------------------------------------------------------------

    def _swap_exact_in(
        self, i: SwapExactIn, market: MarketSnapshot, portfolio: PortfolioSnapshot
    ) -> list[PlannedCall]:
        path = self._path(market, i.token_in, i.token_out)
        calls = self._approval_if_needed(
            i, i.token_in, self.p.router, i.amount_in, market, portfolio
        )
        data = encode_call(
            SWAP_EXACT_IN,
            [i.amount_in, i.min_amount_out, path, self._recipient(i), self._deadline(i, market)],
        )
        calls.append(
            self._call(
                i,
                self.p.router,
                data,
                expected=[
                    ExpectedDelta(token=i.token_in, min_delta=-i.amount_in),
                    ExpectedDelta(token=i.token_out, min_delta=i.min_amount_out),
                ],
                description=(
                    f"swap {self._fmt(market, i.token_in, i.amount_in)} for at least "
                    f"{self._fmt(market, i.token_out, i.min_amount_out)}"
                ),
            )
        )
        return calls

    def _swap_exact_out(
        self, i: SwapExactOut, market: MarketSnapshot, portfolio: PortfolioSnapshot
    ) -> list[PlannedCall]:
        path = self._path(market, i.token_in, i.token_out)
        calls = self._approval_if_needed(
            i, i.token_in, self.p.router, i.max_amount_in, market, portfolio
        )
        data = encode_call(
            SWAP_EXACT_OUT,
            [i.amount_out, i.max_amount_in, path, self._recipient(i), self._deadline(i, market)],
        )
        calls.append(
            self._call(
                i,
                self.p.router,
                data,
                expected=[
                    ExpectedDelta(token=i.token_in, min_delta=-i.max_amount_in),
                    ExpectedDelta(token=i.token_out, min_delta=i.amount_out),
                ],
                description=(
                    f"buy {self._fmt(market, i.token_out, i.amount_out)} for at most "
                    f"{self._fmt(market, i.token_in, i.max_amount_in)}"
                ),
            )
        )
        return calls

    def _approve(
        self, i: Approve, market: MarketSnapshot, portfolio: PortfolioSnapshot
    ) -> list[PlannedCall]:
        return [
            self._call(
                i,
                i.token,
                encode_call(APPROVE, [i.spender, i.amount]),
                allowed_approvals={f"{i.token}:{i.spender}": i.amount},
                description=f"approve {i.spender} for "
                + (
                    f"an unlimited amount of {self._symbol(market, i.token)}"
                    if i.amount >= 2**255
                    else self._fmt(market, i.token, i.amount)
                ),
            )
        ]

    def _wrap(
        self, i: Wrap, market: MarketSnapshot, portfolio: PortfolioSnapshot
    ) -> list[PlannedCall]:
        return [
            self._call(
                i,
                self.p.weth,
                encode_call(DEPOSIT, []),
                value=i.amount,
                expected=[
                    ExpectedDelta(token=None, min_delta=-i.amount),
                    ExpectedDelta(token=self.p.weth, min_delta=i.amount),
                ],
                description=f"wrap {i.amount / 1e18:,.6g} ETH",
            )
        ]

    def _unwrap(
        self, i: Unwrap, market: MarketSnapshot, portfolio: PortfolioSnapshot
    ) -> list[PlannedCall]:
        return [
            self._call(
                i,
                self.p.weth,
                encode_call(WITHDRAW, [i.amount]),
                expected=[
                    ExpectedDelta(token=self.p.weth, min_delta=-i.amount),
                    ExpectedDelta(token=None, min_delta=i.amount),
                ],
                description=f"unwrap {i.amount / 1e18:,.6g} WETH",
            )
        ]

    def _add_liquidity(
        self, i: AddLiquidity, market: MarketSnapshot, portfolio: PortfolioSnapshot
    ) -> list[PlannedCall]:
        pool = market.pool_for(i.token_a, i.token_b)
        if pool is None:
            raise PlanningError(
                f"no known pool for {self._symbol(market, i.token_a)}/"
                f"{self._symbol(market, i.token_b)}; creating pools is not supported"
            )
        calls = self._approval_if_needed(i, i.token_a, self.p.router, i.amount_a, market, portfolio)
        calls += self._approval_if_needed(
            i, i.token_b, self.p.router, i.amount_b, market, portfolio
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
                self._deadline(i, market),
            ],
        )
        calls.append(
            self._call(
                i,
                self.p.router,
                data,
                expected=[
                    ExpectedDelta(token=i.token_a, min_delta=-i.amount_a),
                    ExpectedDelta(token=i.token_b, min_delta=-i.amount_b),
                    ExpectedDelta(token=pool.address, min_delta=1),
                ],
                description=(
                    f"add liquidity: up to {self._fmt(market, i.token_a, i.amount_a)} and "
                    f"{self._fmt(market, i.token_b, i.amount_b)}"
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
                f"no known pool for {self._symbol(market, i.token_a)}/"
                f"{self._symbol(market, i.token_b)}"
            )
        calls = self._approval_if_needed(
            i, pool.address, self.p.router, i.liquidity, market, portfolio
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
                self._deadline(i, market),
            ],
        )
        calls.append(
            self._call(
                i,
                self.p.router,
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

    def _raw(
        self, i: RawCall, market: MarketSnapshot, portfolio: PortfolioSnapshot
    ) -> list[PlannedCall]:
        # Planned verbatim so the guard refuses it by name; it never reaches a signer.
        return [
            self._call(
                i,
                i.target,
                i.data,
                value=i.value,
                description=f"raw call to {i.target} composed by the strategy",
            )
        ]
