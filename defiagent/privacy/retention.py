"""Prune the audit log's records older than a limit, keeping the rest verifiable.

The records dropped are replaced by one checkpoint line (monitoring.audit_log) naming the
last dropped record's seq and hash under an HMAC with the head key; the chain goes on from
it, the authenticated head is untouched. The new file is written beside the old one and
renamed over it under the log's lock (a crash leaves the old log or the new one, never a
mix); an appender holding the old file follows the rename. The newest record is always
kept, and the prune itself is recorded in the log (`audit-prune`).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from defiagent.errors import ConfigError, Refused
from defiagent.monitoring.audit_log import (
    CHECKPOINT_KIND,
    AuditLog,
    _fsync_dir,
    make_checkpoint,
    verify_audit_log,
)


class PruneResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: str
    pruned: int  # records dropped by this prune
    pruned_total: int  # records the checkpoint stands for (this prune and earlier ones)
    kept: int
    before: str  # records older than this were dropped
    checkpoint_seq: int | None = None


def _when(ts: object) -> datetime | None:
    if not isinstance(ts, str):
        return None
    try:
        moment = datetime.fromisoformat(ts)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def prune_audit_log(
    path: Path | str,
    *,
    max_age_days: int,
    head_key: str | None = None,
    now: datetime | None = None,
) -> PruneResult:
    """Drop the records older than `max_age_days` (a prefix of the log: it is in time order)."""
    path = Path(path)
    if max_age_days < 1:
        raise ConfigError("the audit retention must be at least 1 day")
    if not path.is_file():
        raise ConfigError(f"{path} is not a file")
    cutoff = (now or datetime.now(UTC)) - timedelta(days=max_age_days)
    log = AuditLog(path, head_key=head_key)  # refuses a log that does not match its head
    try:
        with log._lock, log._flocked():
            result = _prune_locked(log, path, cutoff, head_key)
    finally:
        log.close()
    if result.pruned:
        with AuditLog(path, head_key=head_key) as after:
            after.record("audit-prune", result.model_dump(exclude={"path"}))
    return result


def _prune_locked(log: AuditLog, path: Path, cutoff: datetime, head_key: str | None) -> PruneResult:
    report = verify_audit_log(path, head_key=head_key)
    if not report.ok:
        problem = report.problem.reason if report.problem else "it does not verify"
        raise Refused(f"the audit log {path} is not pruned because it does not verify: {problem}")
    lines = path.read_bytes().splitlines(keepends=True)
    records = [json.loads(raw) for raw in lines]
    start = 1 if records and records[0].get("kind") == CHECKPOINT_KIND else 0
    cut = start
    # Never the newest record: the log keeps at least one, so its end still has a record.
    while cut < len(records) - 1:
        moment = _when(records[cut].get("ts"))
        if moment is None or moment >= cutoff:
            break
        cut += 1
    pruned = cut - start
    base = PruneResult(
        path=str(path),
        pruned=pruned,
        pruned_total=report.pruned + pruned,
        kept=len(records) - cut,
        before=cutoff.isoformat(timespec="seconds"),
    )
    if pruned == 0:
        return base
    assert log.key.key is not None  # AuditLog opened: its head key is there
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    checkpoint = make_checkpoint(log.key.key, records[cut - 1], stamp)
    data = (json.dumps(checkpoint, separators=(",", ":")) + "\n").encode() + b"".join(lines[cut:])
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-prune-", dir=path.parent)  # 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return base.model_copy(update={"checkpoint_seq": checkpoint["seq"]})
