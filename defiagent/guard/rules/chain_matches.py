from __future__ import annotations

from defiagent.decisions import Verdict
from defiagent.guard.base import GuardContext, GuardRequest, Rule, RuleConfig, Severity


class ChainMatches(Rule[RuleConfig]):
    id = "chain-matches"
    title = "ChainMatches"
    description = "the allowlist, the market data and the agent must all be on the same chain"
    threat = (
        "an allowlist approved for one chain reused on another, "
        "where the same address holds other code"
    )
    severity = Severity.CRITICAL

    def check(self, req: GuardRequest, ctx: GuardContext) -> Verdict:
        if ctx.allowlist.chain_id != ctx.chain_id:
            return self.refuse(
                f"the allowlist is for chain {ctx.allowlist.chain_id}, "
                f"the agent runs on chain {ctx.chain_id}"
            )
        if ctx.market is not None and ctx.market.chain_id != ctx.chain_id:
            return self.refuse(
                f"the market data is from chain {ctx.market.chain_id}, not {ctx.chain_id}"
            )
        if req.entry is not None and req.entry.chain_id != ctx.chain_id:
            return self.refuse(f"the entry for {req.entry.name} is for chain {req.entry.chain_id}")
        return self.allow()
