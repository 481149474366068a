"""The gates, in the order they are judged, and the [backtest.gates] table built from them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from defiagent.backtest.gates.base import Gate
from defiagent.backtest.gates.deflated_sharpe import DeflatedSharpe
from defiagent.backtest.gates.pbo import BacktestOverfitting
from defiagent.backtest.gates.sensitivity import ParameterSensitivity
from defiagent.backtest.gates.walk_forward import WalkForward
from defiagent.backtest.gates.warmup import WarmupDependence

# Cheapest first: the statistics on returns already measured, then the gates that replay.
GATES: tuple[type[Gate[Any]], ...] = (
    DeflatedSharpe,
    BacktestOverfitting,
    WarmupDependence,
    ParameterSensitivity,
    WalkForward,
)

_ids = [g.id for g in GATES]
assert len(_ids) == len(set(_ids)), "gate ids must be unique"


def by_id(gate_id: str) -> type[Gate[Any]] | None:
    return next((g for g in GATES if g.id == gate_id), None)


if TYPE_CHECKING:

    class GatesConfig(BaseModel):
        """[backtest.gates]: one sub-table per gate (built from the gates at run time)."""

        def __getattr__(self, section: str) -> Any: ...

else:
    GatesConfig = create_model(
        "GatesConfig",
        __config__=ConfigDict(extra="forbid", frozen=True),
        __doc__="[backtest.gates]: one sub-table per gate, each with its thresholds.",
        **{
            g.section: (g.Config, Field(default_factory=g.Config, description=g.description))
            for g in GATES
        },
    )


def build_gates(config: BaseModel | None = None) -> list[Gate[Any]]:
    """Every enabled gate with its section of `config` (defaults where absent)."""
    config = config if config is not None else GatesConfig()
    gates = [cls(getattr(config, cls.section)) for cls in GATES]
    return [g for g in gates if g.enabled]
