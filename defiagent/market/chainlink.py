"""Chainlink AggregatorV3 feeds: read `latestRoundData` and validate it, failing closed.

A round is refused when its answer is not positive, its `updatedAt` is 0 (an incomplete
round) or in the future, its `answeredInRound` is behind its `roundId` (the answer was
carried over from an older round), it is older than the feed's `max_age_seconds`, or its
answer sits at or beyond the feed's optional circuit-breaker bounds (`min_answer`,
`max_answer`, whole units: an aggregator clamps to its bounds, so an answer there is not a
market price). Every reason carries the figures.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_abi import decode

from defiagent.market.reader import ChainReader


@dataclass(frozen=True)
class FeedSpec:
    """One feed: the price of `base` in `quote` (whole units), at `address`."""

    base: str
    quote: str
    address: str
    max_age_seconds: int = 600
    min_answer: float | None = None
    max_answer: float | None = None


@dataclass(frozen=True)
class RoundData:
    round_id: int
    answer: int
    started_at: int
    updated_at: int
    answered_in_round: int
    decimals: int

    @property
    def price(self) -> float:
        return self.answer / 10**self.decimals


def read_round(reader: ChainReader, feed: str, decimals: int | None = None) -> RoundData:
    """latestRoundData (and decimals, unless known) at the reader's block; InfraError on failure."""
    round_id, answer, started_at, updated_at, answered_in_round = decode(
        ["uint80", "int256", "uint256", "uint256", "uint80"],
        reader._call(feed, "latestRoundData()"),
    )
    if decimals is None:
        decimals = decode(["uint8"], reader._call(feed, "decimals()"))[0]
    return RoundData(round_id, answer, started_at, updated_at, answered_in_round, decimals)


def round_problem(rd: RoundData, now: int, spec: FeedSpec) -> str | None:
    """Why this round must not be used at block time `now`, or None if it may."""
    if rd.answer <= 0:
        return f"answer {rd.answer} of round {rd.round_id} is not positive"
    if rd.updated_at == 0:
        return f"round {rd.round_id} has updatedAt 0 (the round is not complete)"
    if rd.updated_at > now:
        return (
            f"round {rd.round_id} has updatedAt {rd.updated_at}, "
            f"{rd.updated_at - now}s in the future of block time {now}"
        )
    if rd.answered_in_round < rd.round_id:
        return (
            f"answeredInRound {rd.answered_in_round} < roundId {rd.round_id}: the answer "
            "is carried over from an older round (stale)"
        )
    age = now - rd.updated_at
    if age > spec.max_age_seconds:
        return f"round {rd.round_id} is {age}s old (limit {spec.max_age_seconds}s)"
    if spec.min_answer is not None and rd.price <= spec.min_answer:
        return (
            f"answer {rd.price:.6g} is at or below the circuit-breaker bound "
            f"min_answer {spec.min_answer:.6g}"
        )
    if spec.max_answer is not None and rd.price >= spec.max_answer:
        return (
            f"answer {rd.price:.6g} is at or above the circuit-breaker bound "
            f"max_answer {spec.max_answer:.6g}"
        )
    return None
