"""A buy must be sellable back: the round trip on the fork (defiagent/simulation/round_trip.py).

Unlike the per-call outcome checks, this one judges a whole plan, from a probe the agent runs
after the plan's own simulation and checks: the planned buy, then approve + sell of what it
delivered back along the reverse path, in one simulated block. Its limit is configurable
(`[guard.honeypot]`), so it carries a rule's metadata and config section; the registry lists it
with the outcome checks (`defiagent rules list`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from pydantic import Field

from defiagent.decisions import Verdict
from defiagent.guard.base import Described, RuleConfig, Severity

if TYPE_CHECKING:
    from defiagent.simulation.round_trip import RoundTrip

DEFAULT_MAX_LOSS_BPS = 100


class RoundTripConfig(RuleConfig):
    """`[guard.honeypot]` in agent.toml."""

    enabled: bool = Field(
        default=True, description="probe every buy with a simulated round trip before it is sent"
    )
    max_round_trip_loss_bps: int = Field(
        default=DEFAULT_MAX_LOSS_BPS,
        ge=0,
        le=10_000,
        description="the most a round trip may lose beyond the pools' fees and the price "
        "impact of both legs, in basis points of what it should return",
    )


class RoundTripSellable(Described[RoundTripConfig]):
    id: ClassVar[str] = "round-trip-sellable"
    title: ClassVar[str] = "RoundTripSellable"
    group: ClassVar[str] = "outcome"
    section: ClassVar[str | None] = "honeypot"
    severity: ClassVar[Severity] = Severity.CRITICAL
    Config: ClassVar[type[RuleConfig]] = RoundTripConfig
    description: ClassVar[str] = (
        "a buy (a swap to a token other than the numeraire or WETH, or an add-liquidity) must "
        "sell back on the fork in the same block, through the same router, and return what "
        "the pools' own math says (exact Uniswap V2 math from the reserves; QuoterV2 for a "
        "Uniswap V3 buy) less at most the configured loss beyond the pools' fees; a probe "
        "that cannot run refuses"
    )
    threat: ClassVar[str] = (
        "a honeypot token can be bought but not sold (its transfers to the pool revert) or "
        "taxes a sale so heavily that the position is worth little: the agent would be left "
        "holding it"
    )

    @classmethod
    def config_section(cls) -> str | None:
        return f"guard.{cls.section}"

    def explain(self) -> str:
        if not self.enabled:
            return f"{self.title}: disabled: buys are not probed for a round trip"
        limit = getattr(self.config, "max_round_trip_loss_bps", DEFAULT_MAX_LOSS_BPS)
        return (
            f"{self.title}: every buy must sell back on the fork losing at most {limit} bps "
            "beyond the pools' fees"
        )

    def judge(self, probe: RoundTrip | None) -> Verdict:
        """The verdict on a probe's result; no result (it did not run) refuses."""
        if probe is None:
            return Verdict.refuse(
                self.id, "the round-trip probe did not run, so the buy is refused"
            )
        if probe.passed:
            return Verdict(rule=self.id, allowed=True, reason=probe.reason)
        return Verdict.refuse(self.id, probe.reason)
