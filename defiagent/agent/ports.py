"""What the agent loop needs from the executor, as a small interface.

The executor signs and sends one checked call; it checks the kill switch before signing
and again before sending, and reports what happened. `executor_adapter.py` adapts the
execution package's implementation to this interface.
"""

from __future__ import annotations

from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict

from defiagent.execution.models import PlannedCall
from defiagent.simulation.models import SimulationOutcome
from defiagent.strategy.config import StrategyLimits
from defiagent.strategy.host import Proposal
from defiagent.strategy.protocol import Tick


class ExecutionResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: Literal[
        "mined", "reverted", "refused", "failed", "pending"
    ]  # pending: no receipt in time
    tx_hash: str | None = None
    block_number: int | None = None
    gas_used: int | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "mined"


class CallExecutor(Protocol):
    def execute(self, call: PlannedCall, outcome: SimulationOutcome) -> ExecutionResult: ...


class StrategyPort(Protocol):
    """A strategy as the loop sees it: a name fixed by the config, a tick in, a proposal out.

    `defiagent.strategy.host.StrategyHost` (a sandboxed child) is the one `run`, `dry-run`
    and the demo use; `defiagent.strategy.in_process` adapts a Python object for tests.
    """

    name: str
    limits: StrategyLimits
    description: str

    def propose(self, tick: Tick) -> Proposal: ...

    def close(self) -> None: ...
