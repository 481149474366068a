"""The protocols the agent knows: one line each. The core learns of protocols only here.

Order matters twice: devnet deployment follows it (WETH before the DEXes that need it),
and so do the sources of the price references. To add a protocol, see
`defiagent/protocols/base.py` ("How to add a protocol") and add its line below.
"""

from __future__ import annotations

from functools import cache

from pydantic import BaseModel

from defiagent.allowlist.models import AllowedFunction
from defiagent.protocols.base import (
    ContractScope,
    PlanContext,
    PlanningError,
    ProtocolAdapter,
    ProtocolAddresses,
    ProtocolPlanner,
)
from defiagent.protocols.erc20.adapter import Erc20
from defiagent.protocols.erc4626.adapter import Erc4626
from defiagent.protocols.uniswap_v2.adapter import UniswapV2
from defiagent.protocols.uniswap_v3.adapter import UniswapV3
from defiagent.protocols.weth.adapter import Weth
from defiagent.strategy.intent_base import CORE_INTENT_MODELS, IntentBase, RawCall

PROTOCOLS: tuple[ProtocolAdapter, ...] = (
    Erc20(),
    Weth(),
    UniswapV2(),
    UniswapV3(),
    Erc4626(),
)


def by_name(name: str) -> ProtocolAdapter | None:
    return next((p for p in PROTOCOLS if p.name == name), None)


def names() -> list[str]:
    return [p.name for p in PROTOCOLS]


@cache
def intent_models() -> tuple[type[IntentBase], ...]:
    """Every intent model, the core's first, then each protocol's in registry order."""
    # The raw call last, as it always was: it is the one kind every plan refuses.
    core = [m for m in CORE_INTENT_MODELS if m is not RawCall]
    models = core + [m for p in PROTOCOLS for m in p.intent_models] + [RawCall]
    kinds = [kind_of(m) for m in models]
    twice = sorted({k for k in kinds if kinds.count(k) > 1})
    if twice:  # a programming error in a protocol folder, caught at import
        raise RuntimeError(f"intent kinds defined twice: {', '.join(twice)}")
    return tuple(models)


def kind_of(model: type[BaseModel]) -> str:
    kind: str = model.model_fields["kind"].default
    return kind


def has_venue(model: type[BaseModel]) -> bool:
    return "venue" in model.model_fields


@cache
def routes() -> dict[tuple[str, str | None], ProtocolAdapter]:
    """(intent kind, venue) -> the protocol that plans it; venue None for kinds without one.

    A kind whose model has a `venue` field (the swaps) may be served by several protocols,
    each under its own name; any other kind by exactly one.
    """
    models = {kind_of(m): m for m in intent_models()}
    out: dict[tuple[str, str | None], ProtocolAdapter] = {}
    for p in PROTOCOLS:
        for kind in sorted(p.kinds):
            if kind not in models:
                raise RuntimeError(f"protocol {p.name} serves {kind!r}, which no model defines")
            key = (kind, p.name if has_venue(models[kind]) else None)
            if key in out:
                raise RuntimeError(f"{kind!r} is served by both {out[key].name} and {p.name}")
            out[key] = p
    return out


def route(intent: IntentBase) -> ProtocolAdapter:
    """The protocol that plans `intent`, by (kind, venue); PlanningError if none does."""
    venue: str | None = getattr(intent, "venue", None)
    adapter = routes().get((intent.kind, venue))
    if adapter is not None:
        return adapter
    if venue is not None:
        served = sorted(v for k, v in routes() if k == intent.kind and v is not None)
        raise PlanningError(
            f"venue {venue!r} is not a protocol the agent knows for {intent.kind} "
            f"(known: {', '.join(served) or 'none'})"
        )
    raise PlanningError(f"intent kind {intent.kind!r} has no plan")


def planners(ctx: PlanContext) -> dict[str, ProtocolPlanner]:
    """Each protocol's planner for this agent, by protocol name."""
    return {p.name: p.planner(ctx) for p in PROTOCOLS}


def scopes() -> list[tuple[ProtocolAdapter, ContractScope]]:
    return [(p, s) for p in PROTOCOLS for s in p.scopes()]


def scope(protocol: str, kind: str) -> ContractScope:
    adapter = by_name(protocol)
    if adapter is None:
        raise KeyError(f"no protocol {protocol!r} in the registry")
    return adapter.scope(kind)


def quoter_for(function: AllowedFunction | None) -> ProtocolAdapter:
    """The protocol whose math quotes a call of `function` for the slippage bound.

    The protocol that claims the function (by selector); any other function that declares
    a path is quoted as Uniswap V2 was before there were other protocols.
    """
    if function is not None:
        for p in PROTOCOLS:
            if p.claims(function) and type(p).quote is not ProtocolAdapter.quote:
                return p
    default = by_name("uniswap-v2")
    assert default is not None  # listed above
    return default


def contracts(addresses: ProtocolAddresses) -> dict[str, str]:
    """Every contract a planner targets, by the config key naming it (must be allowlisted)."""
    return {k: v for p in PROTOCOLS for k, v in p.contracts(addresses).items()}


def spenders(addresses: ProtocolAddresses) -> list[str]:
    """Every contract the plans approve, once each, in registry order."""
    return list(dict.fromkeys(a for p in PROTOCOLS for a in p.spenders(addresses)))


def validate_sections(sections: dict[str, object]) -> None:
    """Each [protocols.<name>] table names a protocol with settings and fits its `Settings`.

    ValueError (one sentence) otherwise: a misspelt protocol must not be silently ignored.
    """
    for name, raw in sections.items():
        if not isinstance(raw, dict):
            raise ValueError(
                f"protocols.{name} is neither router, weth nor factory, nor a protocol's table"
            )
        adapter = by_name(name)
        if adapter is None or adapter.Settings is None:
            known = [p.name for p in PROTOCOLS if p.Settings is not None]
            raise ValueError(
                f"[protocols.{name}] is not a protocol with settings "
                f"(known: {', '.join(known) or 'none'})"
            )
        adapter.Settings.model_validate(raw)
