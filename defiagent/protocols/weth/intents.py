"""The intents WETH serves: wrap ETH into WETH, unwrap it back (amounts in wei)."""

from __future__ import annotations

from typing import Literal

from defiagent.strategy.intent_base import IntentBase
from defiagent.types import Wei


class Wrap(IntentBase):
    kind: Literal["wrap"] = "wrap"
    amount: Wei


class Unwrap(IntentBase):
    kind: Literal["unwrap"] = "unwrap"
    amount: Wei
