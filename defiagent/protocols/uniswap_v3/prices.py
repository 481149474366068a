"""A Uniswap V3 pool's price check: its spot (slot0) against its own TWAP (`observe()`),
judged by the same sanity rules as every pool (`defiagent.market.sanity`), and keyed by
the pool's fee tier so the price rule finds the check of the pool a hop really uses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from defiagent.market.models import PriceCheck, SourceCheck, TokenInfo
from defiagent.market.sanity import PriceSanityLimits, check_sources
from defiagent.protocols.uniswap_v3.pool_reader import read_pool, read_twap
from defiagent.protocols.uniswap_v3.quoter import RpcCaller

SOURCE = "uniswap-v3-twap"


def twap_source(
    rpc: RpcCaller,
    pool: str,
    base: TokenInfo,
    quote: TokenInfo,
    *,
    now: int,
    window_seconds: int,
    max_age_seconds: int,
    block: str = "latest",
) -> SourceCheck:
    """The pool's observe() TWAP over `window_seconds` as a reference source's answer
    (price of token0 in token1, whole units); unanswered when the history is too short."""
    twap = read_twap(rpc, pool, window_seconds, now=now, block=block)
    if twap is None:
        return SourceCheck(
            source=SOURCE,
            kind="twap",
            onchain=True,
            answered=False,
            max_age_seconds=max_age_seconds,
            reason=f"the pool's observations do not reach back {window_seconds}s yet",
        )
    return SourceCheck(
        source=SOURCE,
        kind="twap",
        onchain=True,
        answered=True,
        price=twap.price(base.decimals, quote.decimals),
        observed_at=twap.observed_at,
        age_seconds=0,  # the window ends at the block being judged
        max_age_seconds=max_age_seconds,
        ok=True,
        basis=f"observe() over {window_seconds}s, mean tick {twap.mean_tick}",
    )


def pool_price_check(
    rpc: RpcCaller,
    pool: str,
    tokens: Mapping[str, TokenInfo],
    *,
    now: int,
    window_seconds: int,
    limits: PriceSanityLimits,
    extra_sources: Sequence[SourceCheck] = (),
    block: str = "latest",
) -> PriceCheck:
    """Spot against the TWAP (and any other sources) for one V3 pool, with its fee tier."""
    state = read_pool(rpc, pool, block=block)
    base, quote = tokens.get(state.token0), tokens.get(state.token1)
    if base is None or quote is None:  # a token the agent does not watch: no price, no trade
        unknown = state.token0 if base is None else state.token1
        return PriceCheck(
            base=state.token0,
            quote=state.token1,
            spot=None,
            reference=None,
            deviation_bps=None,
            reference_age_seconds=None,
            ok=False,
            reason=f"the pool's token {unknown} is not a watched token",
            fee=state.fee,
        )
    twap = twap_source(
        rpc,
        pool,
        base,
        quote,
        now=now,
        window_seconds=window_seconds,
        max_age_seconds=limits.max_reference_age_seconds,
        block=block,
    )
    spot = state.spot(base.decimals, quote.decimals) if state.sqrt_price_x96 else None
    check = check_sources(base.address, quote.address, spot, [twap, *extra_sources], limits)
    return check.model_copy(update={"fee": state.fee})
