"""Intents: what an untrusted strategy may ask for. Never raw transactions.

Amounts are integers in the token's smallest unit (wei for ETH), at most 2**256 - 1. A
strategy can name any token or spender it likes: the guard, not this schema, decides what is
allowed. These are also the wire models of docs/strategy-protocol.md: unknown fields are
refused, strings and calldata are bounded, so whatever parses is safe to handle.

The core's kinds (swaps, approve, raw call) are defined in `intent_base`; each protocol's own
kinds in its folder. `Intent` (the union, discriminated by `kind`) and `INTENT_MODELS` are
assembled here from both, through the protocol registry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import Field

from defiagent.protocols.registry import intent_models, kind_of
from defiagent.strategy.intent_base import (
    Approve,
    IntentBase,
    RawCall,
    SwapExactIn,
    SwapExactOut,
)

__all__ = ["INTENT_MODELS", "Approve", "Intent", "IntentBase", "RawCall"]
__all__ += ["SwapExactIn", "SwapExactOut"]

if TYPE_CHECKING:
    # mypy cannot see a union built at run time: to it, an intent is the common base.
    Intent = IntentBase
else:
    Intent = Annotated[Union[tuple(intent_models())], Field(discriminator="kind")]  # noqa: UP007

# Each intent model by its kind, e.g. for a strategy that builds a schema or parses one kind.
INTENT_MODELS: dict[str, type[IntentBase]] = {kind_of(m): m for m in intent_models()}


def __getattr__(name: str) -> Any:
    """A protocol's intent model by its class name (`from ...intents import Wrap`), so
    callers need not know which folder defines it."""
    for model in intent_models():
        if model.__name__ == name:
            return model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
