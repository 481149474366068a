"""ERC-20 as a protocol: the `approve` intent and the token scope (approve, spender listed)."""

from __future__ import annotations

from collections.abc import Sequence

from defiagent.allowlist.models import ConstraintKind, Role
from defiagent.protocols.base import ContractScope, PlanContext, ProtocolAdapter, ProtocolPlanner
from defiagent.protocols.erc20.functions import APPROVE
from defiagent.protocols.erc20.planner import Erc20Planner
from defiagent.protocols.scopes import fn


class Erc20(ProtocolAdapter):
    name = "erc20"
    title = "ERC-20 tokens"
    kinds = frozenset({"approve"})

    def planner(self, ctx: PlanContext) -> ProtocolPlanner:
        return Erc20Planner(ctx)

    def scopes(self) -> Sequence[ContractScope]:
        return (
            ContractScope(
                kind="token",
                role=Role.TOKEN,
                functions=(fn(APPROVE, ("spender", ConstraintKind.IN_ALLOWLIST)),),
                npm_source="demo-token",
            ),
        )
