"""Batch vetting on Dask: many source targets, one verdict each, on a cluster.

A LocalCluster (worker processes on this machine) by default, or an existing scheduler
(`tcp://host:port`). Each task is one `vet_sources` run; every worker uses the same
caches (compiled output, Slither and Mythril results, on-demand compilers), so a target
vetted before, by anyone on this machine, costs a cache read. A target's failure is its
own verdict (an infrastructure error is recorded for that target, never a crash of the
batch).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from defiagent.allowlist.models import TriagedFinding
from defiagent.allowlist.policy import Policy
from defiagent.allowlist.reviewers import Reviewers
from defiagent.errors import ConfigError, DefiagentError, InfraError

Outcome = Literal["accepted", "refused", "could-not-analyse", "error"]
# Environment a local worker needs to share this process's caches.
SHARED_ENV = ("DEFIAGENT_CACHE_DIR", "DEFIAGENT_SOLC_CACHE", "XDG_CACHE_HOME", "DEFIAGENT_MYTH")


class BatchItem(BaseModel):
    model_config = ConfigDict(frozen=True)

    target: str
    verdict: Outcome
    seconds: float
    findings: int = 0  # blocking Slither findings + high-severity Mythril issues
    reason: str = ""  # the first failure, or the error
    solc_version: str | None = None
    cached: bool = False  # Slither's result came from the shared cache
    worker: str = ""


class BatchReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    scheduler: str  # "LocalCluster (N workers)" or the address given
    workers: int
    seconds: float
    items: list[BatchItem]

    def counts(self) -> dict[str, int]:
        out = {k: 0 for k in ("accepted", "refused", "could-not-analyse", "error")}
        for item in self.items:
            out[item.verdict] += 1
        return out

    @property
    def exit_code(self) -> int:
        """0 all accepted; 3 when a tool was missing somewhere; else 1."""
        if any(i.verdict == "error" for i in self.items):
            return 3
        return 0 if all(i.verdict == "accepted" for i in self.items) else 1


def read_targets(list_file: Path) -> list[str]:
    """Targets from a list file: one source file or folder a line, `#` comments, paths
    relative to the list's folder. Every target must exist (a typo is refused)."""
    list_file = Path(list_file)
    if not list_file.is_file():
        raise ConfigError(f"--batch {list_file} is not a file")
    targets = []
    for number, raw in enumerate(list_file.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        path = Path(line).expanduser()
        if not path.is_absolute():
            path = list_file.parent / path
        if not path.exists():
            raise ConfigError(f"{list_file} line {number}: {line} does not exist")
        targets.append(str(path.resolve()))
    if not targets:
        raise ConfigError(f"{list_file} lists no target")
    return targets


def vet_one(
    target: str,
    policy: Policy,
    reviewers: Reviewers | None,
    triage: Sequence[TriagedFinding],
    env: dict[str, str],
) -> BatchItem:
    """One target on a worker: its verdict, never an exception."""
    from defiagent.vetting.vet import vet_sources

    os.environ.update(env)
    worker = f"{os.uname().nodename}:{os.getpid()}"
    start = time.perf_counter()
    try:
        report = vet_sources(
            Path(target), policy=policy, reviewers=reviewers, triage=list(triage)
        ).report
    except DefiagentError as exc:
        verdict: Outcome = "error" if isinstance(exc, InfraError) else "could-not-analyse"
        return BatchItem(
            target=target,
            verdict=verdict,
            seconds=time.perf_counter() - start,
            reason=str(exc),
            worker=worker,
        )
    failures = report.failures()
    findings = len(report.slither.blocking) if report.slither else 0
    findings += sum(len(m.failing) for m in report.mythril or [])
    return BatchItem(
        target=target,
        verdict=report.verdict,
        seconds=time.perf_counter() - start,
        findings=findings,
        reason=failures[0].reason if failures else "",
        solc_version=report.slither.solc_version if report.slither else None,
        cached=bool(report.slither and report.slither.cached),
        worker=worker,
    )


def run_batch(
    targets: Sequence[str],
    *,
    policy: Policy,
    reviewers: Reviewers | None = None,
    triage: Sequence[TriagedFinding] = (),
    scheduler: str | None = None,
    workers: int = 2,
    on_result: Callable[[BatchItem], None] | None = None,
) -> BatchReport:
    """Vet every target on Dask; `on_result` is called as each one finishes (progress)."""
    from distributed import Client, LocalCluster, as_completed

    start = time.perf_counter()
    cluster = None
    try:
        if scheduler:
            client = Client(scheduler, timeout="5s")
            env: dict[str, str] = {}  # remote workers keep their own caches
            label = scheduler
        else:
            if workers < 1:
                raise ConfigError(f"--workers {workers} must be at least 1")
            cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,  # each task runs Slither and solc: one per core
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
            client = Client(cluster)
            env = {k: os.environ[k] for k in SHARED_ENV if k in os.environ}
            label = f"LocalCluster ({workers} workers)"
    except OSError as exc:
        raise InfraError(f"cannot reach the Dask scheduler {scheduler}: {exc}") from exc
    try:
        count = len(client.scheduler_info().get("workers") or {})
        futures = [
            client.submit(vet_one, t, policy, reviewers, list(triage), env, pure=False)
            for t in targets
        ]
        index = {f.key: i for i, f in enumerate(futures)}
        items: list[BatchItem | None] = [None] * len(targets)
        for future in as_completed(futures):
            i = index[future.key]
            try:
                item = future.result()
            except Exception as exc:  # a worker died under the task (memory, a signal)
                item = BatchItem(target=targets[i], verdict="error", seconds=0, reason=str(exc))
            items[i] = item
            if on_result is not None:
                on_result(item)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return BatchReport(
        scheduler=label,
        workers=count,
        seconds=time.perf_counter() - start,
        items=[i for i in items if i is not None],
    )
