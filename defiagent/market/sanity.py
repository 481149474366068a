"""Price sanity: the pool's spot price must agree with enough independent, fresh sources.

A pool passes only if
(a) every reference that answered passed its own checks, is fresh (age within its limit)
    and agrees with spot within `max_deviation_bps`: a lying or stale source refuses, it is
    never outvoted;
(b) at least `min_sources` sources, spot included, are fresh and agree; and
(c) at least one of them is an on-chain reference (TWAP or Chainlink): an off-chain HTTP
    price is never trusted without one.
A source that did not answer (no TWAP window yet, the API timed out) neither counts nor
refuses by itself. Every reason carries the figures: source, its price, spot, deviation and
its limit, age and its limit.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from defiagent.market.models import PriceCheck, PriceQuote, SourceCheck


class PriceSanityLimits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_deviation_bps: float = Field(default=300, gt=0, le=10_000)
    max_reference_age_seconds: int = Field(default=600, gt=0)
    min_sources: int = Field(default=2, ge=2, description="agreeing sources, spot included")


def _figures(s: SourceCheck, spot: float, limits: PriceSanityLimits) -> str:
    price = f"{s.price:.6g}" if s.price is not None else "none"
    dev = f"{s.deviation_bps:.0f} bps" if s.deviation_bps is not None else "n/a"
    age = f"{s.age_seconds}s" if s.age_seconds is not None else "n/a"
    return (
        f"price {price} vs spot {spot:.6g}: deviation {dev} "
        f"(limit {limits.max_deviation_bps:.0f} bps), age {age} "
        f"(limit {s.max_age_seconds or limits.max_reference_age_seconds}s)"
    )


def judge_source(s: SourceCheck, spot: float, limits: PriceSanityLimits) -> SourceCheck:
    """The source's answer compared with spot: deviation, staleness, and its own verdict."""
    max_age = s.max_age_seconds or limits.max_reference_age_seconds
    update: dict = {"max_age_seconds": max_age, "max_deviation_bps": limits.max_deviation_bps}
    if not s.answered:
        return s.model_copy(update=update | {"ok": False})
    deviation = None
    if s.price is not None and s.price > 0:
        deviation = abs(spot - s.price) / s.price * 10_000
    update["deviation_bps"] = deviation
    judged = s.model_copy(update=update)
    figures = _figures(judged, spot, limits)
    if not s.ok or s.price is None:
        why = s.reason or "its answer is unusable"
        return judged.model_copy(update={"ok": False, "reason": f"{s.source}: {why}; {figures}"})
    if s.age_seconds is None or s.age_seconds > max_age:
        return judged.model_copy(
            update={
                "ok": False,
                "reason": f"the {s.source} reference is {s.age_seconds}s old "
                f"(limit {max_age}s); {figures}",
            }
        )
    if deviation is None or deviation > limits.max_deviation_bps:
        return judged.model_copy(
            update={
                "ok": False,
                "reason": f"spot {spot:.6g} deviates {deviation:.0f} bps from the {s.source} "
                f"reference {s.price:.6g} (limit {limits.max_deviation_bps:.0f} bps; "
                f"age {s.age_seconds}s, limit {max_age}s)",
            }
        )
    return judged.model_copy(update={"ok": True, "reason": ""})


def check_sources(
    base: str,
    quote: str,
    spot: float | None,
    sources: Sequence[SourceCheck],
    limits: PriceSanityLimits,
) -> PriceCheck:
    """Spot against every source's answer; any doubt is a failed check (fail closed)."""
    if spot is None or spot <= 0:
        return PriceCheck(
            base=base,
            quote=quote,
            spot=spot,
            reference=None,
            deviation_bps=None,
            reference_age_seconds=None,
            ok=False,
            reason="the pool has no usable spot price",
            sources=list(sources),
            min_sources=limits.min_sources,
        )
    judged = [judge_source(s, spot, limits) for s in sources]
    answered = [s for s in judged if s.answered]
    failed = [s for s in answered if not s.ok]
    agreeing = [s for s in answered if s.ok]
    count = 1 + len(agreeing)
    if failed:
        summary = failed[0]
    elif answered:
        summary = max(answered, key=lambda s: s.deviation_bps or 0)
    else:
        summary = None

    reason = ""
    if failed:
        reason = "; ".join(s.reason for s in failed)
    elif count < limits.min_sources:
        silent = [f"{s.source}: {s.reason or 'no answer'}" for s in judged if not s.answered]
        reason = (
            f"only {count} of the required {limits.min_sources} sources (spot included) are "
            f"fresh and agree"
            + (f"; {'; '.join(silent)}" if silent else "; no reference is configured")
        )
        if not answered:
            reason = "no reference price is available yet: " + reason
    elif not any(s.onchain for s in agreeing):
        reason = (
            "no on-chain reference (twap or chainlink) agrees with spot; an off-chain price "
            "is never trusted alone: "
            + "; ".join(f"{s.source} {_figures(s, spot, limits)}" for s in agreeing)
        )
    return PriceCheck(
        base=base,
        quote=quote,
        spot=spot,
        reference=summary.price if summary else None,
        deviation_bps=summary.deviation_bps if summary else None,
        reference_age_seconds=summary.age_seconds if summary else None,
        ok=not reason,
        reason=reason,
        sources=judged,
        agreeing_sources=count,
        min_sources=limits.min_sources,
    )


def check_price(
    base: str,
    quote: str,
    spot: float | None,
    reference: PriceQuote | None,
    now: int,
    limits: PriceSanityLimits,
) -> PriceCheck:
    """Spot against one on-chain reference quote (kept for callers with a single source)."""
    sources = []
    if reference is not None:
        sources.append(
            SourceCheck(
                source=reference.source,
                kind="reference",
                onchain=True,
                answered=True,
                price=reference.price,
                observed_at=reference.observed_at,
                age_seconds=max(0, now - reference.observed_at),
                max_age_seconds=limits.max_reference_age_seconds,
                ok=True,
            )
        )
    return check_sources(base, quote, spot, sources, limits)
