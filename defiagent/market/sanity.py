"""Price sanity: the pool's spot price must agree with an independent, fresh reference."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from defiagent.market.models import PriceCheck, PriceQuote


class PriceSanityLimits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_deviation_bps: float = Field(default=300, gt=0, le=10_000)
    max_reference_age_seconds: int = Field(default=600, gt=0)


def check_price(
    base: str,
    quote: str,
    spot: float | None,
    reference: PriceQuote | None,
    now: int,
    limits: PriceSanityLimits,
) -> PriceCheck:
    """Compare spot with the reference; any missing input is a failed check (fail closed)."""

    def result(ok: bool, reason: str, deviation: float | None = None, age: int | None = None):
        return PriceCheck(
            base=base,
            quote=quote,
            spot=spot,
            reference=reference.price if reference else None,
            deviation_bps=deviation,
            reference_age_seconds=age,
            ok=ok,
            reason=reason,
        )

    if spot is None or spot <= 0:
        return result(False, "the pool has no usable spot price")
    if reference is None:
        return result(False, "no reference price is available yet")
    age = max(0, now - reference.observed_at)
    deviation = abs(spot - reference.price) / reference.price * 10_000
    if age > limits.max_reference_age_seconds:
        return result(
            False,
            f"the {reference.source} reference is {age}s old "
            f"(limit {limits.max_reference_age_seconds}s)",
            deviation,
            age,
        )
    if deviation > limits.max_deviation_bps:
        return result(
            False,
            f"spot {spot:.6g} deviates {deviation:.0f} bps from the {reference.source} "
            f"reference {reference.price:.6g} (limit {limits.max_deviation_bps:.0f} bps)",
            deviation,
            age,
        )
    return result(True, "", deviation, age)
