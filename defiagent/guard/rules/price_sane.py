from __future__ import annotations

import itertools

from defiagent.decisions import Verdict
from defiagent.guard.base import GuardContext, GuardRequest, Rule, Severity, unreadable


class PriceSane(Rule):
    id = "price-sane"
    title = "PriceSane"
    description = (
        "every pool a trade goes through must have a spot price that agrees with an "
        "independent, fresh reference (deviation and staleness limits, see [market])"
    )
    threat = "trading into a pool whose price was just manipulated, or on a stale reference"
    severity = Severity.HIGH

    def check(self, req: GuardRequest, ctx: GuardContext) -> Verdict:
        if req.decoded is None:
            return unreadable(self, req, "the pools traded")
        a = req.decoded.args
        if "path" in a:
            path = list(a["path"])
            hops = list(itertools.pairwise(path))
        elif "tokenA" in a and "tokenB" in a:
            hops = [(a["tokenA"], a["tokenB"])]
        else:
            return self.allow()
        if ctx.market is None:
            return self.refuse("no market snapshot, so no price can be checked")
        for x, y in hops:
            check = ctx.market.check_for(x, y)
            if check is None:
                return self.refuse(f"no price check for the pool {x}/{y}")
            if not check.ok:
                return self.refuse(f"the {x[:8]}…/{y[:8]}… price is not sane: {check.reason}")
        return self.allow()
