"""Adapts the execution package's journaled Executor to the loop's CallExecutor port.

The Executor raises Refused (nothing signed or sent: fee cap, kill switch, journal says
the call ran already) or InfraError (the node or the signer failed); the loop wants one
result either way, with the reason.
"""

from __future__ import annotations

from defiagent.agent.ports import ExecutionResult
from defiagent.errors import InfraError, Refused
from defiagent.execution import executor as execution
from defiagent.execution.executor import Executor
from defiagent.execution.journal import IN_FLIGHT, State
from defiagent.execution.models import PlannedCall
from defiagent.simulation.models import SimulationOutcome


class JournaledExecutor:
    def __init__(self, executor: Executor) -> None:
        self.executor = executor

    def settle(self) -> list[dict]:
        """Reconcile what an earlier failure left in flight (the executor refuses new work
        until then); returns what was settled, for the audit log."""
        if not self.executor.journal.entries(IN_FLIGHT):
            return []
        return [r.model_dump(mode="json") for r in self.executor.reconcile()]

    @property
    def bundles(self) -> bool:
        """Whether a plan can go out as one bundle (a private relay takes bundles)."""
        return self.executor.submitter.mode == "private"

    def execute_bundle(
        self, items: list[tuple[PlannedCall, SimulationOutcome]]
    ) -> list[ExecutionResult]:
        """Each call's result, the bundle's calls in order; all fail alike when it does."""
        try:
            results = self.executor.execute_bundle(items)
        except Refused as exc:
            return [ExecutionResult(status="refused", reason=exc.message)] * len(items)
        except InfraError as exc:
            return [ExecutionResult(status="failed", reason=exc.message)] * len(items)
        return [self._result(r) for r in results]

    def execute(self, call: PlannedCall, outcome: SimulationOutcome) -> ExecutionResult:
        try:
            result = self.executor.execute(call, outcome)
        except Refused as exc:
            return ExecutionResult(status="refused", reason=exc.message)
        except InfraError as exc:
            return ExecutionResult(status="failed", reason=exc.message)
        return self._result(result)

    @staticmethod
    def _result(result: execution.ExecutionResult) -> ExecutionResult:
        common = {
            "tx_hash": result.tx_hash,
            "block_number": result.block_number,
            "gas_used": result.gas_used,
            "reason": result.reason,
        }
        if result.state == State.CONFIRMED:
            return ExecutionResult(status="mined", **common)
        if result.state == State.FAILED:
            return ExecutionResult(
                status="reverted", **(common | {"reason": result.reason or "reverted on chain"})
            )
        if result.state == State.ABORTED:
            return ExecutionResult(status="refused", **common)
        if result.state in IN_FLIGHT:  # sent, no receipt within the timeout
            return ExecutionResult(
                status="pending",
                **(common | {"reason": result.reason or "no receipt within the timeout"}),
            )
        return ExecutionResult(
            status="failed",
            **(common | {"reason": result.reason or f"the transaction is {result.state}"}),
        )
