from __future__ import annotations

from pydantic import Field

from defiagent.decisions import Verdict
from defiagent.guard.base import GuardContext, GuardRequest, Rule, RuleConfig, Severity, unreadable
from defiagent.market import uniswap_v2_math as v2


class SlippageConfig(RuleConfig):
    max_slippage_bps: float = Field(default=100, ge=0, le=5_000, description="basis points")


class SlippageBound(Rule):
    id = "slippage-bound"
    title = "SlippageBound"
    description = (
        "a swap's min-out (or max-in) and a liquidity change's minimums must be within the "
        "slippage bound of the pool's own quote"
    )
    threat = "a swap with no real minimum is free money for a sandwich bot"
    severity = Severity.HIGH
    section = "slippage"
    Config = SlippageConfig

    def check(self, req: GuardRequest, ctx: GuardContext) -> Verdict:
        if req.decoded is None:
            return unreadable(self, req, "slippage bounds")
        a = req.decoded.args
        bps = self.config.max_slippage_bps
        if "path" in a and ("amountOutMin" in a or "amountInMax" in a):
            if ctx.market is None:
                return self.refuse("no market snapshot to quote the swap against")
            path = list(a["path"])
            if "amountOutMin" in a:
                amount_in = a.get("amountIn", req.call.value)
                quoted = ctx.market.quote_out(path, amount_in) if amount_in else None
                if quoted is None:
                    return self.refuse("the pools on the path cannot quote this swap")
                floor = quoted * (10_000 - bps) / 10_000
                if a["amountOutMin"] < floor:
                    gap = (quoted - a["amountOutMin"]) / max(quoted, 1) * 10_000
                    return self.refuse(
                        f"min-out {a['amountOutMin']} is {gap:.0f} bps below the pool quote "
                        f"{quoted} (limit {bps:.0f} bps)"
                    )
            else:
                quoted = ctx.market.quote_in(path, a["amountOut"]) if a.get("amountOut") else None
                if quoted is None:
                    return self.refuse("the pools on the path cannot quote this swap")
                ceiling = quoted * (10_000 + bps) / 10_000
                if a["amountInMax"] > ceiling:
                    gap = (a["amountInMax"] - quoted) / quoted * 10_000
                    return self.refuse(
                        f"max-in {a['amountInMax']} is {gap:.0f} bps above the pool quote "
                        f"{quoted} (limit {bps:.0f} bps)"
                    )
            return self.allow()
        if "amountAMin" in a and "amountBMin" in a and "tokenA" in a and "tokenB" in a:
            return self._liquidity(req, ctx, bps)
        return self.allow()

    def _liquidity(self, req: GuardRequest, ctx: GuardContext, bps: float) -> Verdict:
        a = req.decoded.args
        pool = ctx.market.pool_for(a["tokenA"], a["tokenB"]) if ctx.market else None
        if pool is None:
            return self.refuse("no pool for this liquidity change in the market snapshot")
        r_a, r_b = pool.reserves_for(a["tokenA"])
        if "amountADesired" in a:  # addLiquidity: the router keeps the pool's ratio
            want_a, want_b = a["amountADesired"], a["amountBDesired"]
            if r_a and r_b:
                b_opt = v2.quote(want_a, r_a, r_b)
                if b_opt <= want_b:
                    want_b = b_opt
                else:
                    want_a = v2.quote(want_b, r_b, r_a)
        elif "liquidity" in a:  # removeLiquidity: a share of the reserves
            if not pool.total_supply:
                return self.refuse(
                    "the pool's LP supply is unknown, so the minimums cannot be checked"
                )
            want_a = a["liquidity"] * r_a // pool.total_supply
            want_b = a["liquidity"] * r_b // pool.total_supply
        else:
            return self.allow()
        for name, want in (("amountAMin", want_a), ("amountBMin", want_b)):
            if a[name] < want * (10_000 - bps) / 10_000:
                return self.refuse(
                    f"{name} {a[name]} is more than {bps:.0f} bps below the expected {want}"
                )
        return self.allow()

    def explain(self) -> str:
        return (
            f"{self.title}: min-out within {self.config.max_slippage_bps:.0f} bps of the pool quote"
        )
