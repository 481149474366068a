"""A model-driven strategy: a small trained classifier says where the price goes next.

The model file (`model`, written by `defiagent strategy train`, listed in the strategy's
`files` so its digest is pinned) predicts from the last `lookback` log returns of the
pool's spot price the probability that the price is higher `horizon` ticks later. At
`min_confidence` or more the strategy buys `base` with `trade_size_quote`; at
`1 - min_confidence` or less it sells that much worth of `base`; in between it closes the
position it opened (`exit_on_doubt`) or waits. It
reads the model with the standard library alone (a JSON file of numbers, no pickle).

Its memory is the last `lookback + 1` prices: after that many ticks its decisions no
longer depend on where it started (the warm-up gate checks this).
"""

from __future__ import annotations

import json
import math
from collections import deque
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from defiagent.market.models import MarketSnapshot, PortfolioSnapshot
from defiagent.strategy.intents import Intent, SwapExactIn
from defiagent.strategy.sdk import Strategy, StrategyParams, run
from defiagent.types import Address, Wei


class ModelClassifierParams(StrategyParams):
    base: Address
    quote: Address
    model: str = Field(
        description="absolute path of the JSON model file (also one of the strategy's files)"
    )
    min_confidence: float = Field(default=0.55, gt=0.5, lt=1)
    trade_size_quote: Wei  # how much quote each trade is worth, in quote's smallest unit
    slippage_bps: float = Field(default=50, ge=0, le=1000)
    deadline_seconds: int = Field(default=300, gt=0, le=3600)
    exit_on_doubt: bool = Field(
        default=True, description="close its position as soon as a rise is no longer likely"
    )

    @field_validator("model")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not Path(value).is_absolute():
            raise ValueError(
                "must be an absolute path (the sandbox does not run beside agent.toml)"
            )
        return value


class Model:
    """P(price up) from the model file's numbers: a logistic regression or a tree."""

    def __init__(self, data: dict[str, Any]) -> None:
        if data.get("format") != "defiagent-model/1":
            raise ValueError("not a defiagent-model/1 file")
        self.lookback = int(data["spec"]["lookback"])
        self.kind = data["spec"]["kind"]
        self.coef = [float(c) for c in data.get("coef", [])]
        self.intercept = float(data.get("intercept", 0.0))
        self.mean = [float(m) for m in data.get("mean", [])]
        self.scale = [float(s) for s in data.get("scale", [])]
        self.nodes = [[float(v) for v in n] for n in data.get("nodes", [])]
        if self.kind == "logistic" and len(self.coef) != self.lookback:
            raise ValueError("the logistic model's coefficients do not match its lookback")
        if self.kind == "tree" and not self.nodes:
            raise ValueError("the tree model has no nodes")

    def p_up(self, x: list[float]) -> float:
        if self.kind == "logistic":
            z = self.intercept + sum(
                c * (v - m) / s
                for c, v, m, s in zip(self.coef, x, self.mean, self.scale, strict=True)
            )
            return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))
        i = 0
        for _ in range(len(self.nodes)):  # bounded: a malformed tree cannot loop forever
            feature, threshold, left, right, p = self.nodes[i]
            if feature < 0:
                return p
            i = int(left) if x[int(feature)] <= threshold else int(right)
        raise ValueError("the tree model does not reach a leaf")


class ModelClassifier(Strategy):
    Params = ModelClassifierParams

    def __init__(self, params: ModelClassifierParams) -> None:
        super().__init__(params)
        self.p: ModelClassifierParams = params
        self.model = Model(json.loads(Path(params.model).read_text()))
        self.prices: deque[float] = deque(maxlen=self.model.lookback + 1)

    def describe(self) -> str:
        p, m = self.p, self.model
        return (
            f"model-classifier: a {m.kind} model on the last {m.lookback} returns of {p.base} "
            f"in {p.quote}; trades at {p.min_confidence:.0%} confidence"
        )

    def propose(self, market: MarketSnapshot, portfolio: PortfolioSnapshot) -> list[Intent]:
        p = self.p
        spot = market.spot_price(p.base, p.quote)
        if spot is None:
            return []
        self.prices.append(spot)
        if len(self.prices) <= self.model.lookback:
            return []  # not enough history yet
        check = market.check_for(p.base, p.quote)
        if check is None or not check.ok:
            return []  # never trade on a price the agent cannot trust
        seen = list(self.prices)
        x = [math.log(seen[-1 - j] / seen[-2 - j]) for j in range(self.model.lookback)]
        p_up = self.model.p_up(x)
        base_info, quote_info = market.token(p.base), market.token(p.quote)
        if base_info is None or quote_info is None:
            return []
        held = sum(int(x.amount) for x in self.tick.positions if x.token == p.base)
        one_trade_of_base = int(
            p.trade_size_quote / 10**quote_info.decimals / spot * 10**base_info.decimals
        )
        if p_up >= p.min_confidence:
            token_in, token_out = p.quote, p.base
            amount_in = p.trade_size_quote
            why = f"the model gives {p_up:.0%} for a rise: buy"
        elif held > 0 and p.exit_on_doubt:  # one trade's worth at a time: within the caps
            token_in, token_out, amount_in = p.base, p.quote, min(held, one_trade_of_base)
            why = f"the model gives only {p_up:.0%} for a rise: reduce the position"
        elif p_up <= 1 - p.min_confidence:
            token_in, token_out, amount_in = p.base, p.quote, one_trade_of_base
            why = f"the model gives {1 - p_up:.0%} for a fall: sell"
        else:
            return []
        amount_in = min(amount_in, portfolio.balance(token_in))
        if amount_in <= 0:
            return []
        quoted = market.quote_out([token_in, token_out], amount_in)
        if not quoted:
            return []
        return [
            SwapExactIn(
                token_in=token_in,
                token_out=token_out,
                amount_in=amount_in,
                min_amount_out=quoted * int(10_000 - p.slippage_bps) // 10_000,
                reason=why,
                deadline_seconds=p.deadline_seconds,
            )
        ]


if __name__ == "__main__":
    run(ModelClassifier)
