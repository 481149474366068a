"""The planner: an Intent becomes the concrete call(s) that carry it out.

It routes each intent by (kind, venue) to the protocol that serves it
(`defiagent.protocols.registry`): Uniswap V2 Router02 for swaps and liquidity, WETH9 for
wrap/unwrap, ERC-20 `approve`, and whatever else the registry lists. A raw call is planned
verbatim so the guard can refuse it by name. The planner applies no policy: it encodes what
the intent says (a foreign recipient included) and the guard decides.
"""

from __future__ import annotations

from collections.abc import Mapping

from defiagent.execution.models import PlannedCall
from defiagent.market.models import MarketSnapshot, PortfolioSnapshot
from defiagent.protocols import registry
from defiagent.protocols.base import PlanContext, PlanningError, ProtocolAddresses
from defiagent.protocols.planning import call
from defiagent.strategy.intent_base import IntentBase, RawCall

__all__ = ["Planner", "PlanningError", "ProtocolAddresses"]


class Planner:
    def __init__(
        self,
        agent: str,
        protocols: ProtocolAddresses,
        *,
        transfer_fees: Mapping[str, int] | None = None,
    ) -> None:
        """`transfer_fees`: token -> the fee its allowlist entry declares
        (`ActiveAllowlist.transfer_fees()`), for the planners of fee-on-transfer tokens."""
        self.agent = agent
        self.p = protocols
        fees = {t.lower(): bps for t, bps in (transfer_fees or {}).items()}
        self._planners = registry.planners(
            PlanContext(agent=agent, addresses=protocols, transfer_fees=fees)
        )

    def plan(
        self, intent: IntentBase, market: MarketSnapshot, portfolio: PortfolioSnapshot
    ) -> list[PlannedCall]:
        if isinstance(intent, RawCall):
            # Planned verbatim so the guard refuses it by name; it never reaches a signer.
            return [
                call(
                    intent,
                    self.agent,
                    intent.target,
                    intent.data,
                    value=intent.value,
                    description=f"raw call to {intent.target} composed by the strategy",
                )
            ]
        adapter = registry.route(intent)  # PlanningError: no protocol serves it
        return self._planners[adapter.name].plan(intent, market, portfolio)
