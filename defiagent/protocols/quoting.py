"""Quotes read on the fork before the guard runs, for protocols whose price the snapshot
cannot compute (Uniswap V3: QuoterV2 runs the swap in the pool's own code).

The pipeline calls `with_prequotes` between planning and the guard: each planned call is
decoded against its allowlist entry, the swap its declared roles describe becomes a
`QuoteRequest` (the same reading the slippage rule makes), the protocol that claims the
function reads its quotes at the fork's block, and the snapshot the guard sees carries
them (`MarketSnapshot.swap_quotes`). A call that is not on the allowlist, does not decode or
is not a swap gets no quote; the guard refuses it, or does not need one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from defiagent.allowlist.models import ActiveAllowlist, ArgRole
from defiagent.execution.models import PlannedCall
from defiagent.guard.calldata import CalldataError, decode_call, selector_of
from defiagent.guard.conventions import RoleArgs, RouteError, swap_route
from defiagent.market.models import MarketSnapshot, SwapQuote
from defiagent.protocols import registry
from defiagent.protocols.base import ProtocolAdapter, ProtocolAddresses, QuoteRequest

if TYPE_CHECKING:
    from web3 import Web3

R = ArgRole


def quote_request(
    call: PlannedCall, allowlist: ActiveAllowlist
) -> tuple[ProtocolAdapter, QuoteRequest] | None:
    """The swap a planned call makes, as its quoting protocol and a QuoteRequest, or None."""
    entry = allowlist.entries.get(call.target)
    if entry is None or entry.revoked:
        return None
    try:
        function = entry.function(selector_of(call.data))
        if function is None:
            return None
        decoded = decode_call(function.signature, call.data)
    except CalldataError:
        return None
    names = {role: arg for arg, role in function.arg_roles.items() if arg in decoded.args}
    a = RoleArgs(names=names, values={role: decoded.args[arg] for role, arg in names.items()})
    try:
        route = swap_route(a)
    except RouteError:
        return None
    if route is None:
        return None
    if R.MIN_OUT in a and R.AMOUNT_IN in a:
        request = QuoteRequest(
            exact="in", path=route.tokens, amount=a[R.AMOUNT_IN], fees=route.fees
        )
    elif R.MAX_IN in a and R.AMOUNT_OUT in a:
        request = QuoteRequest(
            exact="out", path=route.tokens, amount=a[R.AMOUNT_OUT], fees=route.fees
        )
    else:
        return None
    return registry.quoter_for(function), request


def _prequoting(adapter: ProtocolAdapter) -> bool:
    return type(adapter).prequote is not ProtocolAdapter.prequote


def needs_prequotes(calls: Sequence[PlannedCall], allowlist: ActiveAllowlist) -> bool:
    """Whether any of `calls` is a swap whose protocol quotes it on the chain."""
    return any(
        found is not None and _prequoting(found[0])
        for found in (quote_request(c, allowlist) for c in calls)
    )


def with_prequotes(
    market: MarketSnapshot,
    calls: Sequence[PlannedCall],
    allowlist: ActiveAllowlist,
    w3: Web3,
    block: int,
    addresses: ProtocolAddresses,
) -> MarketSnapshot:
    """`market` with the fork's quotes for every swap among `calls` that needs one."""
    wanted: dict[str, tuple[ProtocolAdapter, list[QuoteRequest]]] = {}
    for call in calls:
        found = quote_request(call, allowlist)
        if found is None:
            continue
        adapter, request = found
        if not _prequoting(adapter):
            continue  # it quotes from the snapshot alone
        wanted.setdefault(adapter.name, (adapter, []))[1].append(request)
    if not wanted:
        return market
    quotes = list(market.swap_quotes)
    for adapter, requests in wanted.values():
        answers = adapter.prequote(requests, w3, block, addresses)
        for request, quoted in answers.items():
            quotes.append(
                SwapQuote(
                    venue=adapter.name,
                    exact=request.exact,
                    path=request.path,
                    fees=request.fees,
                    amount=request.amount,
                    quoted=quoted,
                    source=f"{adapter.title} quoter at block {block}",
                )
            )
    return market.model_copy(update={"swap_quotes": quotes})
