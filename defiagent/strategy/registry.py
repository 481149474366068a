"""Strategies by name, as `[strategy] name = ...` in agent.toml refers to them."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from defiagent.errors import ConfigError
from defiagent.strategy.base import Strategy
from defiagent.strategy.mean_reversion import MeanReversion
from defiagent.strategy.rogue import RogueStrategy

STRATEGIES: dict[str, Any] = {cls.name: cls for cls in (MeanReversion, RogueStrategy)}


def build_strategy(name: str, params: dict[str, Any]) -> Strategy:
    cls = STRATEGIES.get(name)
    if cls is None:
        raise ConfigError(
            f"strategy.name {name!r} is unknown; known strategies: {', '.join(sorted(STRATEGIES))}"
        )
    try:
        parsed = cls.Params.model_validate(params)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise ConfigError(f"strategy.params.{where}: {first['msg']}") from exc
    return cls(parsed)
