"""The audit trail: append-only JSON lines, each one chained to the one before it.

Each record is `{"seq", "ts", "kind", "payload", "prev", "hash"}`, where `hash` is the
SHA-256 of the canonical JSON of the other fields and `prev` is the previous record's hash
(64 zeros for the first). Appends take an exclusive lock, are written in one `write` and
fsync'd. `verify_audit_log` walks the chain and names the first line where an edit, a
deletion, an insertion or a reordering breaks it. A sidecar `<file>.head` holds the last
seq and hash, so cutting records off the end is caught too (anchor that head somewhere
else, e.g. in your monitoring, to make the whole chain tamper-evident).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from defiagent.errors import InfraError
from defiagent.monitoring.redaction import redact

GENESIS = "0" * 64


def _canonical(record: dict[str, Any]) -> bytes:
    body = {k: record[k] for k in ("seq", "ts", "kind", "payload", "prev")}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _jsonable(data: Any) -> Any:
    if isinstance(data, BaseModel):
        return data.model_dump(mode="json")
    if isinstance(data, dict):
        return {str(k): _jsonable(v) for k, v in data.items()}
    if isinstance(data, list | tuple | set | frozenset):
        return [_jsonable(v) for v in data]
    if isinstance(data, bytes):
        return "0x" + data.hex()
    if isinstance(data, int) and not isinstance(data, bool) and abs(data) >= 2**53:
        return str(data)  # JSON readers lose precision on big integers: keep them exact
    return data


def record_hash(record: dict[str, Any]) -> str:
    return hashlib.sha256(_canonical(record)).hexdigest()


class AuditLog:
    """Implements AuditSink. Safe across threads and processes (flock on the file)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.head_path = self.path.with_name(self.path.name + ".head")
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            raise InfraError(f"the audit log {self.path} cannot be opened: {exc}") from exc
        self._fd = fd

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _tail(self) -> tuple[int, str]:
        """(next seq, hash of the last record), read from the file under the lock."""
        size = os.fstat(self._fd).st_size
        if size == 0:
            return 0, GENESIS
        chunk = min(size, 1 << 16)
        while True:
            data = os.pread(self._fd, chunk, size - chunk)
            if not data.endswith(b"\n"):
                raise InfraError(
                    f"the audit log {self.path} ends in a partial line; "
                    "run `defiagent audit-log verify` before appending"
                )
            lines = data[:-1].split(b"\n")
            if len(lines) > 1 or chunk == size:
                break
            chunk = min(size, chunk * 4)
        try:
            last = json.loads(lines[-1])
            return int(last["seq"]) + 1, str(last["hash"])
        except (ValueError, KeyError, TypeError) as exc:
            raise InfraError(f"the last line of the audit log {self.path} is not a record") from exc

    def record(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        clean = redact(_jsonable(payload))
        with self._lock:
            if self._fd is None:
                raise InfraError("the audit log is closed")
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                seq, prev = self._tail()
                record = {
                    "seq": seq,
                    "ts": datetime.now(UTC).isoformat(timespec="microseconds"),
                    "kind": kind,
                    "payload": clean,
                    "prev": prev,
                }
                # Round-trip through JSON so the hash covers exactly what is written.
                record = json.loads(json.dumps(record, default=str))
                record["hash"] = record_hash(record)
                line = json.dumps(record, separators=(",", ":"), default=str) + "\n"
                os.write(self._fd, line.encode())
                os.fsync(self._fd)
                self._write_head(seq, record["hash"])
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        return record

    def _write_head(self, seq: int, hash_: str) -> None:
        tmp = self.head_path.with_name(self.head_path.name + ".tmp")
        with open(tmp, "w") as fh:
            json.dump({"seq": seq, "hash": hash_}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.head_path)


class AuditProblem(BaseModel):
    model_config = ConfigDict(frozen=True)

    line: int  # 1-based line number in the file
    reason: str


class AuditReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: str
    ok: bool
    records: int
    head: str | None = None  # hash of the last good record
    problem: AuditProblem | None = None


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with open(path, "rb") as fh:
        yield from enumerate(fh, start=1)


def verify_audit_log(path: Path | str, *, check_head: bool = True) -> AuditReport:
    """Walk the chain; stop at the first line that breaks it."""
    path = Path(path)
    if not path.is_file():
        return AuditReport(
            path=str(path), ok=False, records=0, problem=AuditProblem(line=0, reason="no such file")
        )
    prev, expected_seq, count = GENESIS, 0, 0
    hashes: list[str] = []

    def bad(line: int, reason: str) -> AuditReport:
        head = prev if count else None
        problem = AuditProblem(line=line, reason=reason)
        return AuditReport(path=str(path), ok=False, records=count, head=head, problem=problem)

    for number, raw in _lines(path):
        if not raw.endswith(b"\n"):
            return bad(number, "the line is cut off (no newline): a torn or truncated write")
        try:
            rec = json.loads(raw)
        except ValueError:
            return bad(number, "the line is not valid JSON")
        if not isinstance(rec, dict) or set(rec) != {
            "seq",
            "ts",
            "kind",
            "payload",
            "prev",
            "hash",
        }:
            return bad(number, "the line is not an audit record (wrong fields)")
        if rec["seq"] != expected_seq:
            what = (
                "missing or reordered" if rec["seq"] > expected_seq else "duplicated or reordered"
            )
            return bad(
                number,
                f"sequence number {rec['seq']} where {expected_seq} was expected: "
                f"records are {what}",
            )
        if rec["prev"] != prev:
            return bad(number, "the link to the previous record is broken (inserted or reordered)")
        if record_hash(rec) != rec["hash"]:
            return bad(number, "the record's content does not match its hash (edited)")
        prev, expected_seq, count = rec["hash"], expected_seq + 1, count + 1
        hashes.append(prev)

    head_path = path.with_name(path.name + ".head")
    if check_head and head_path.is_file():
        head: dict = {}
        with contextlib.suppress(ValueError, OSError):
            head = json.loads(head_path.read_text())
        seq = head.get("seq") if isinstance(head, dict) else None
        if isinstance(seq, int) and seq >= count:
            return bad(
                count + 1,
                f"the log ends at record {count - 1} but its head file names record {seq}: "
                "records were cut off the end",
            )
        # The head may lag by one after a crash between the append and the head update;
        # the record it names must still carry the hash it recorded.
        if isinstance(seq, int) and 0 <= seq < count and hashes[seq] != head.get("hash"):
            return bad(seq + 1, "the record the head file names has a different hash (rewritten)")
    return AuditReport(path=str(path), ok=True, records=count, head=prev if count else None)
