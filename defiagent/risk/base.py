"""What risk limits share: entries versus exits, pauses, and how much of a limit is used.

Risk limits stop a strategy from taking on more risk; they never stop it (or the agent's
own stop-loss) from giving risk back. A call "takes exposure" when the intent lets it
bring in anything but the numeraire; selling into the numeraire, or an approval, does not.
A pausing limit also pauses the whole strategy (the agent does not ask it for intents)
while its condition holds, with the reason in the audit log and an alert.
"""

from __future__ import annotations

from abc import abstractmethod

from defiagent.decisions import Verdict
from defiagent.execution.models import ExpectedDelta
from defiagent.guard.base import C, GuardContext, GuardRequest, Rule
from defiagent.monitoring.events import LimitUsage


def entries(req: GuardRequest, ctx: GuardContext) -> list[ExpectedDelta]:
    """What the call may bring in besides the numeraire (None = ETH)."""
    numeraire = ctx.market.numeraire if ctx.market else None
    return [d for d in req.call.expected if d.min_delta > 0 and d.token != numeraire]


def takes_exposure(req: GuardRequest, ctx: GuardContext) -> bool:
    return bool(entries(req, ctx))


class RiskRule(Rule[C]):
    group = "risk"

    def usage(self, ctx: GuardContext) -> LimitUsage | None:
        """How much of this limit the state in `ctx` uses (None: not measurable now)."""
        return None


class PausingRule(RiskRule[C]):
    """A limit on the state of the portfolio or the strategy, not on one call."""

    @abstractmethod
    def pause_reason(self, ctx: GuardContext) -> str | None:
        """Why the strategy in `ctx` must not take on risk now; None if it may."""

    def check(self, req: GuardRequest, ctx: GuardContext) -> Verdict:
        if not takes_exposure(req, ctx):
            return self.allow()  # exits and approvals reduce or keep risk: never paused
        reason = self.pause_reason(ctx)
        return self.refuse(reason) if reason else self.allow()


def unvalued(what: str, ctx: GuardContext | None = None) -> str:
    why = ctx.risk.unvalued_reason if ctx is not None else ""
    return (
        f"the portfolio cannot be valued{f' ({why})' if why else ''}, so {what} cannot be checked"
    )
