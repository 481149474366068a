from __future__ import annotations

import math
from fractions import Fraction

from pydantic import Field

from defiagent.allowlist.models import ArgRole
from defiagent.decisions import Verdict
from defiagent.guard.base import GuardContext, GuardRequest, Rule, RuleConfig, Severity, unreadable
from defiagent.guard.conventions import (
    RoleArgs,
    RouteError,
    is_liquidity_change,
    is_trade,
    swap_route,
    undeclared,
)
from defiagent.guard.transfer_fees import declared_fees, quote_after_fees
from defiagent.protocols import registry
from defiagent.protocols.base import QuoteRequest
from defiagent.protocols.uniswap_v2 import math as v2

R = ArgRole
CANNOT = "the slippage bound cannot be checked"


def _scaled(amount: int, per_10k: float) -> Fraction:
    """amount * per_10k / 10_000, exactly.

    Token amounts exceed a float's 53 bits: in floats, a minimum a few thousand wei under
    the bound could pass. A Fraction of the (float) setting is exact, so the bound is too.
    Callers round it to whole units the way a strategy would (a floor rounded down, a
    ceiling up): an amount in wei cannot sit on a fractional bound.
    """
    return Fraction(amount) * Fraction(per_10k) / 10_000


class SlippageConfig(RuleConfig):
    max_slippage_bps: float = Field(default=100, ge=0, le=5_000, description="basis points")


class SlippageBound(Rule[SlippageConfig]):
    id = "slippage-bound"
    title = "SlippageBound"
    description = (
        "a trade's min-out (or max-in), or a liquidity change's amount-a-min and "
        "amount-b-min, read from the arguments its function's scope declares in those roles, "
        "must be within the slippage bound of the pool's own quote; a trade that declares no "
        "such argument (or not the amounts and path to quote it) is refused, other calls are "
        "not concerned; a trade is a call whose function declares a trade role, or that "
        "carries a swap or liquidity intent and is neither an approval nor a call to a token"
    )
    threat = "a swap with no real minimum is free money for a sandwich bot"
    severity = Severity.HIGH
    section = "slippage"
    Config = SlippageConfig

    def check(self, req: GuardRequest, ctx: GuardContext) -> Verdict:
        if req.decoded is None:
            return unreadable(self, req, "slippage bounds")
        if not is_trade(req):
            return self.allow()
        a = RoleArgs.of(req)
        bps = self.config.max_slippage_bps
        if R.MIN_OUT in a or R.MAX_IN in a:
            return self._swap(req, ctx, a, bps)
        if is_liquidity_change(req, a):
            for role in (R.AMOUNT_A_MIN, R.AMOUNT_B_MIN):
                if role not in a:
                    return self.refuse(undeclared(req, role, CANNOT))
            return self._liquidity(req, ctx, a, bps)
        wanted = R.MAX_IN if req.call.intent_kind == "swap-exact-out" else R.MIN_OUT
        return self.refuse(undeclared(req, wanted, CANNOT))

    def _swap(self, req: GuardRequest, ctx: GuardContext, a: RoleArgs, bps: float) -> Verdict:
        assert req.function is not None  # the call decoded, so its function was found
        try:
            route = swap_route(a)
        except RouteError as exc:
            return self.refuse(f"{exc}, so {CANNOT}")
        if route is None:
            return self.refuse(undeclared(req, R.PATH, CANNOT, "token-in and token-out"))
        if R.MIN_OUT in a:
            if R.AMOUNT_IN in a:
                amount_in = a[R.AMOUNT_IN]
            elif req.function.payable:  # swapping the ETH sent with the call
                amount_in = req.call.value
            else:
                return self.refuse(undeclared(req, R.AMOUNT_IN, CANNOT))
        elif R.AMOUNT_OUT not in a:
            return self.refuse(undeclared(req, R.AMOUNT_OUT, CANNOT))
        if ctx.market is None:
            return self.refuse("no market snapshot to quote the swap against")
        # The protocol that claims the function quotes it: Uniswap V2 from the snapshot's
        # reserves, Uniswap V3 from QuoterV2's answer read on the fork before the guard.
        quoter = registry.quoter_for(req.function)
        if R.MIN_OUT in a:
            min_out = a[R.MIN_OUT]
            request = QuoteRequest(exact="in", path=route.tokens, amount=amount_in, fees=route.fees)
            # Declared fee-on-transfer tokens on the path: what reaches the recipient.
            taxed = declared_fees(ctx, route.tokens)
            if taxed and amount_in:
                quoted = quote_after_fees(
                    quoter, ctx.market, route.tokens, route.fees, amount_in, taxed
                )
            else:
                quoted = quoter.quote(request, ctx.market) if amount_in else None
            if quoted is None:
                return self.refuse("the pools on the path cannot quote this swap")
            floor = math.floor(_scaled(quoted, 10_000 - bps))
            if min_out < floor:
                gap = (quoted - min_out) / max(quoted, 1) * 10_000
                after = " after the declared transfer fees" if taxed else ""
                return self.refuse(
                    f"min-out {min_out} is {gap:.0f} bps below the pool quote "
                    f"{quoted}{after} (limit {bps:.0f} bps)"
                )
            return self.allow()
        max_in = a[R.MAX_IN]
        request = QuoteRequest(
            exact="out", path=route.tokens, amount=a[R.AMOUNT_OUT], fees=route.fees
        )
        quoted = quoter.quote(request, ctx.market) if a[R.AMOUNT_OUT] else None
        if quoted is None:
            return self.refuse("the pools on the path cannot quote this swap")
        ceiling = math.ceil(_scaled(quoted, 10_000 + bps))
        if max_in > ceiling:
            gap = (max_in - quoted) / quoted * 10_000
            return self.refuse(
                f"max-in {max_in} is {gap:.0f} bps above the pool quote "
                f"{quoted} (limit {bps:.0f} bps)"
            )
        return self.allow()

    def _liquidity(self, req: GuardRequest, ctx: GuardContext, a: RoleArgs, bps: float) -> Verdict:
        for role in (R.TOKEN_A, R.TOKEN_B):
            if role not in a:
                return self.refuse(undeclared(req, role, CANNOT))
        pool = ctx.market.pool_for(a[R.TOKEN_A], a[R.TOKEN_B]) if ctx.market else None
        if pool is None:
            return self.refuse("no pool for this liquidity change in the market snapshot")
        r_a, r_b = pool.reserves_for(a[R.TOKEN_A])
        if R.AMOUNT_A_DESIRED in a and R.AMOUNT_B_DESIRED in a:
            # addLiquidity: the router keeps the pool's ratio
            want_a, want_b = a[R.AMOUNT_A_DESIRED], a[R.AMOUNT_B_DESIRED]
            if r_a and r_b:
                b_opt = v2.quote(want_a, r_a, r_b)
                if b_opt <= want_b:
                    want_b = b_opt
                else:
                    want_a = v2.quote(want_b, r_b, r_a)
        elif R.LIQUIDITY in a:  # removeLiquidity: a share of the reserves
            if not pool.total_supply:
                return self.refuse(
                    "the pool's LP supply is unknown, so the minimums cannot be checked"
                )
            want_a = a[R.LIQUIDITY] * r_a // pool.total_supply
            want_b = a[R.LIQUIDITY] * r_b // pool.total_supply
        else:
            missing = R.AMOUNT_B_DESIRED if R.AMOUNT_A_DESIRED in a else R.AMOUNT_A_DESIRED
            return self.refuse(undeclared(req, missing, CANNOT, "liquidity"))
        for role, want in ((R.AMOUNT_A_MIN, want_a), (R.AMOUNT_B_MIN, want_b)):
            if a[role] < math.floor(_scaled(want, 10_000 - bps)):
                return self.refuse(
                    f"{a.name(role)} {a[role]} is more than {bps:.0f} bps below the expected {want}"
                )
        return self.allow()

    def explain(self) -> str:
        return (
            f"{self.title}: min-out within {self.config.max_slippage_bps:.0f} bps of the pool quote"
        )
