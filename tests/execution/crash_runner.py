"""Child process for the crash tests: execute one planned call, dying at a chosen step.

Reads one JSON document on stdin (the throwaway key travels here, never in argv):
  {"rpc", "journal", "key", "call", "outcome", "crash_at": step | null, "reconcile": bool}
Prints one JSON line: what reconcile and execute returned. With crash_at set, the process
ends with os._exit(CRASH_EXIT) right after that step: no cleanup, no flush, like a SIGKILL.
"""

from __future__ import annotations

import json
import os
import sys

from defiagent.errors import Refused
from defiagent.execution.executor import Executor
from defiagent.execution.fees import FeePolicy
from defiagent.execution.journal import Journal
from defiagent.execution.models import PlannedCall
from defiagent.simulation.models import SimulationOutcome
from tests.execution.signer import ThrowawaySigner

CRASH_EXIT = 77


class Off:
    def is_on(self) -> bool:
        return False


def main() -> None:
    job = json.loads(sys.stdin.read())
    crash_at = job.get("crash_at")

    def on_step(step: str, key: str) -> None:
        if step == crash_at:
            os._exit(CRASH_EXIT)

    journal = Journal(job["journal"])
    executor = Executor(
        job["rpc"],
        ThrowawaySigner.from_key(job["key"]),
        journal,
        FeePolicy(),
        kill_switch=Off(),
        receipt_timeout=10,
        on_step=on_step,
    )
    report: dict = {}
    if job.get("reconcile"):
        report["reconciled"] = [r.model_dump(mode="json") for r in executor.reconcile()]
    call = PlannedCall.model_validate(job["call"])
    try:
        report["executed"] = executor.execute(
            call, SimulationOutcome.model_validate(job["outcome"])
        ).model_dump(mode="json")
    except Refused as exc:
        report["refused"] = str(exc)
    journal.close()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
