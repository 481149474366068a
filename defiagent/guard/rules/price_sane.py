from __future__ import annotations

from defiagent.allowlist.models import ArgRole
from defiagent.decisions import Verdict
from defiagent.guard.base import GuardContext, GuardRequest, Rule, RuleConfig, Severity, unreadable
from defiagent.guard.conventions import RoleArgs, RouteError, is_trade, swap_route, undeclared


class PriceSane(Rule[RuleConfig]):
    id = "price-sane"
    title = "PriceSane"
    description = (
        "every pool a trade goes through (the arguments its function's scope declares as "
        "path, token-in and token-out, or token-a and token-b) must have a spot price that "
        "agrees with an independent, fresh reference (deviation and staleness limits, see "
        "[market]); a trade that declares none of them is refused, other calls are not "
        "concerned; a trade is a call whose function declares a trade role, or that carries a "
        "swap or liquidity intent and is neither an approval nor a call to a token"
    )
    threat = "trading into a pool whose price was just manipulated, or on a stale reference"
    severity = Severity.HIGH

    def check(self, req: GuardRequest, ctx: GuardContext) -> Verdict:
        if req.decoded is None:
            return unreadable(self, req, "the pools traded")
        if not is_trade(req):
            return self.allow()
        a = RoleArgs.of(req)
        try:
            route = swap_route(a)
        except RouteError as exc:
            return self.refuse(f"{exc}, so the pools it trades through cannot be price-checked")
        hops: list[tuple[str, str, int | None]]
        if route is not None:
            hops = route.hops
        elif ArgRole.TOKEN_A in a and ArgRole.TOKEN_B in a:
            hops = [(a[ArgRole.TOKEN_A], a[ArgRole.TOKEN_B], None)]
        else:
            return self.refuse(
                undeclared(
                    req,
                    ArgRole.PATH,
                    "the pools it trades through cannot be price-checked",
                    "token-in and token-out, nor token-a and token-b",
                )
            )
        if ctx.market is None:
            return self.refuse("no market snapshot, so no price can be checked")
        for x, y, fee in hops:
            # A hop with a fee tier (Uniswap V3) is its own pool: that pool's check, not
            # another venue's pool of the same pair.
            check = ctx.market.check_for(x, y, fee)
            if check is None:
                tier = f" at fee tier {fee}" if fee is not None else ""
                return self.refuse(f"no price check for the pool {x}/{y}{tier}")
            if not check.ok:
                return self.refuse(f"the {x[:8]}…/{y[:8]}… price is not sane: {check.reason}")
        return self.allow()
