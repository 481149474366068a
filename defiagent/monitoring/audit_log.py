"""The audit trail: append-only JSON lines, each one chained to the one before it.

Each record is `{"seq", "ts", "kind", "payload", "prev", "hash"}`, where `hash` is the
SHA-256 of the canonical JSON of the other fields and `prev` is the previous record's hash
(64 zeros for the first). Appends take an exclusive lock, are written in one `write` and
fsync'd. `verify_audit_log` walks the chain and names the first line where an edit, a
deletion, an insertion or a reordering breaks it.

Anyone who can write the file can rebuild a consistent SHA-256 chain, so the end of the
chain is authenticated: the sidecar `<file>.head` holds the last seq and hash with an
HMAC-SHA256 under a key kept *outside* the state dir (see `load_head_key`). Cutting records
off the end, forging the head, deleting it, or appending records without the key is found
by `verify_audit_log`, and `AuditLog()` refuses to append to such a log (before this, the
agent's next start appended and rewrote the head, and the gap verified again).

An append is three steps, each durable before the next: the head announces the record's
hash (`next`), the record is written, the head names the record. A crash between any two
leaves a state that verifies; only a crash in the middle of the record's `write` leaves a
torn last line, which `repair_audit_log` removes (recording what it removed).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import stat
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from defiagent.errors import ConfigError, InfraError, Refused
from defiagent.monitoring.redaction import redact
from defiagent.state_crypto.files import seal_payload

GENESIS = "0" * 64
HEAD_KEY_ENV = "DEFIAGENT_AUDIT_HEAD_KEY"  # a key reference, e.g. keyring:defiagent/audit-head
KEY_BYTES = 32
MIN_SECRET_CHARS = 32  # a head key from the environment or the keyring
_MAC_DOMAIN = b"defiagent audit head v1\n"
_TORN = "the line is cut off (no newline): a torn or truncated write"


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


# -- the head key ----------------------------------------------------------------------------
#
# The key that authenticates the head must not be in the state dir: whoever has only the
# state dir (a user or process that can write it, a backup, a sync tool) could then forge
# the head as easily as the records. By default it is a random 32-byte file in the per-user
# config dir, one per state dir (named from a hash of the state dir's absolute path, so two
# agents never share a key); `head_key` (or $DEFIAGENT_AUDIT_HEAD_KEY) may name a secret in
# the environment or the OS keyring instead, e.g. for a host where the home dir is shared.


@dataclass(frozen=True)
class HeadKey:
    source: str  # "env:NAME", "keyring:service/name" or "file:/path" (never the key itself)
    key: bytes | None = None  # None: a key file that does not exist
    path: Path | None = None  # the key file, for a file source

    def __repr__(self) -> str:  # never the key
        return f"HeadKey({self.source})"


def key_dir() -> Path:
    """The per-user config dir for the head keys: $XDG_CONFIG_HOME/defiagent or
    ~/.config/defiagent."""
    xdg = os.environ.get("XDG_CONFIG_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".config"
    return base / "defiagent"


def default_head_key_path(log_path: Path | str) -> Path:
    """The key file for the log's state dir (the folder the log is in)."""
    state_dir = Path(log_path).absolute().parent.resolve()
    digest = hashlib.sha256(os.fsencode(state_dir)).hexdigest()[:32]
    return key_dir() / f"audit-head-{digest}.key"


def head_key_reference(log_path: Path | str, head_key: str | None = None) -> str:
    """Where the key comes from: `head_key`, else $DEFIAGENT_AUDIT_HEAD_KEY, else the file."""
    ref = head_key or os.environ.get(HEAD_KEY_ENV) or ""
    return ref or f"file:{default_head_key_path(log_path)}"


def load_head_key(log_path: Path | str, head_key: str | None = None) -> HeadKey:
    """The key for the log's head, from its reference; a file source whose file does not
    exist yet gives `key=None` (`AuditLog` creates it for a brand-new log only)."""
    ref = head_key_reference(log_path, head_key)
    scheme, _, rest = ref.partition(":")
    what = f"the audit log's head key ({ref})"
    if scheme in ("env", "keyring", "vault", "aws-sm"):  # any secret reference (docs/secrets.md)
        from defiagent.strategy.secrets import resolve_secret

        value = resolve_secret(ref, what=what)
        if len(value) < MIN_SECRET_CHARS:
            raise ConfigError(
                f"{what} is shorter than {MIN_SECRET_CHARS} characters",
                remedy="use a random one, e.g. `openssl rand -hex 32`",
            )
        return HeadKey(source=ref, key=value.encode())
    if scheme != "file" or not rest:
        raise ConfigError(f"{what}: use a secret reference (docs/secrets.md) or file:PATH")
    path = Path(rest).expanduser().absolute()
    state_dir = Path(log_path).absolute().parent.resolve()
    if path.parent.resolve().is_relative_to(state_dir):
        raise ConfigError(
            f"{what} is inside the state dir {state_dir}; it must live outside it, "
            "or whoever can write the state dir can forge the head",
            remedy=f"set XDG_CONFIG_HOME to a folder outside it, or {HEAD_KEY_ENV}",
        )
    if not path.exists():
        return HeadKey(source=f"file:{path}", path=path)
    return HeadKey(source=f"file:{path}", key=_read_key_file(path), path=path)


def _check_key_dir(folder: Path) -> None:
    info = folder.stat()
    if not stat.S_ISDIR(info.st_mode):
        raise Refused(f"the audit head key folder {folder} is not a directory")
    if info.st_uid != os.getuid():
        raise Refused(f"the audit head key folder {folder} belongs to another user")
    if stat.S_IMODE(info.st_mode) & 0o022:
        raise Refused(
            f"the audit head key folder {folder} can be written by group or others",
            remedy=f"run: chmod 700 {folder}",
        )


def _read_key_file(path: Path) -> bytes:
    from defiagent.operator.files import check_private

    _check_key_dir(path.parent)
    check_private(path, "audit head key file")
    try:
        key = path.read_bytes()
    except OSError as exc:
        raise InfraError(f"the audit head key file {path} cannot be read: {exc}") from exc
    if len(key) != KEY_BYTES:
        raise Refused(f"the audit head key file {path} does not hold a {KEY_BYTES}-byte key")
    return key


def _create_key_file(path: Path) -> bytes:
    """A new random key, created 0600 in a 0700 folder; another process creating it at the
    same moment wins and its key is used."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _check_key_dir(path.parent)
        fd, tmp = tempfile.mkstemp(prefix=".audit-head-", dir=path.parent)  # created 0600
        try:
            with os.fdopen(fd, "wb") as fh:
                os.fchmod(fh.fileno(), 0o600)
                fh.write(secrets.token_bytes(KEY_BYTES))
                fh.flush()
                os.fsync(fh.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)  # complete before it has its name; never overwrites
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        _fsync_dir(path.parent)
    except OSError as exc:
        raise InfraError(f"the audit head key file {path} cannot be created: {exc}") from exc
    return _read_key_file(path)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def head_mac(key: bytes, seq: int, hash_: str, next_: str | None) -> str:
    body = {"v": 1, "seq": seq, "hash": hash_, "next": next_}
    data = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(key, _MAC_DOMAIN + data, hashlib.sha256).hexdigest()


# -- the checkpoint a pruned log starts at -----------------------------------------------------
#
# Retention (defiagent.privacy.retention) drops the oldest records and puts in their place
# one line shaped like a record: the last dropped record's seq, ts, prev and hash, kind
# `audit-checkpoint`, and a payload with the number dropped, when, and an HMAC over all of
# it under the head key. The rest of the chain links to that hash as before, so it still
# verifies; a checkpoint edited, forged or moved to another log does not authenticate.

CHECKPOINT_KIND = "audit-checkpoint"
_CHECKPOINT_DOMAIN = b"defiagent audit checkpoint v1\n"


def checkpoint_mac(key: bytes, rec: dict[str, Any]) -> str:
    payload: dict[str, Any] = rec["payload"] if isinstance(rec.get("payload"), dict) else {}
    body = {
        "seq": rec.get("seq"),
        "ts": rec.get("ts"),
        "prev": rec.get("prev"),
        "hash": rec.get("hash"),
        "pruned_records": payload.get("pruned_records"),
        "pruned_at": payload.get("pruned_at"),
    }
    data = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(key, _CHECKPOINT_DOMAIN + data, hashlib.sha256).hexdigest()


def make_checkpoint(key: bytes, last: dict[str, Any], pruned_at: str) -> dict[str, Any]:
    """The checkpoint line standing for every record up to and including `last`."""
    rec = {
        "seq": last["seq"],
        "ts": last["ts"],
        "kind": CHECKPOINT_KIND,
        "payload": {"pruned_records": last["seq"] + 1, "pruned_at": pruned_at},
        "prev": last["prev"],
        "hash": last["hash"],
    }
    rec["payload"]["mac"] = checkpoint_mac(key, rec)
    return rec


def _checkpoint_problem(
    rec: dict[str, Any], path: Path, *, check_head: bool, head_key: str | None
) -> str:
    """Why the checkpoint a log starts at is not to be trusted ("" when it is)."""
    payload = rec["payload"]
    shaped = (
        type(rec["seq"]) is int
        and rec["seq"] >= 0
        and isinstance(rec["hash"], str)
        and isinstance(payload, dict)
        and payload.get("pruned_records") == rec["seq"] + 1
        and isinstance(payload.get("mac"), str)
    )
    if not shaped:
        return "the log starts with a checkpoint that is not one (wrong fields)"
    if not check_head:
        return "the log starts at a checkpoint, which only the head key can authenticate"
    try:
        hk = load_head_key(path, head_key)
    except Refused as exc:
        return str(exc)
    if hk.key is None:
        return f"the checkpoint cannot be authenticated: its key file {hk.path} is missing"
    if not hmac.compare_digest(checkpoint_mac(hk.key, rec), payload["mac"]):
        return (
            "the checkpoint of the pruned records does not authenticate (its MAC does not "
            f"check): it was edited or forged, or written with another key than {hk.source}"
        )
    return ""


# -- judging a log's end against its head ----------------------------------------------------


@dataclass(frozen=True)
class _Tail:
    seq: int  # the last record's seq, -1 for an empty log
    hash: str  # its hash (GENESIS for an empty log)
    prev: str | None  # its link to the one before


@dataclass(frozen=True)
class _Verdict:
    ok: bool
    authenticated: bool = False
    seq: int | None = None  # the record the authenticated head names
    line: int = 0  # the 1-based line of the problem, 0 for the head file itself
    reason: str = ""
    remedy: str | None = None


def _judge_head(head_path: Path, hk: HeadKey, tail: _Tail, hash_at=None) -> _Verdict:
    """Does the log, ending at `tail`, match its authenticated head?"""
    name, count = head_path.name, tail.seq + 1
    aside = "move the log and its head aside as evidence to start a new one"
    if not head_path.exists():
        if count == 0:
            return _Verdict(ok=True)  # a brand-new log
        return _Verdict(
            ok=False,
            reason=f"the head file {name} is missing while the log holds {count} records, "
            "so nothing shows where the log ended",
            remedy=f"restore {name} if you have it, else {aside}",
        )
    head: Any = None
    with contextlib.suppress(OSError, ValueError):
        head = json.loads(head_path.read_text())
    fields_ok = (
        isinstance(head, dict)
        and type(head.get("seq")) is int
        and head["seq"] >= -1
        and isinstance(head.get("hash"), str)
        and isinstance(head.get("next"), str | None)
        and isinstance(head.get("mac", ""), str)
    )
    if not fields_ok:
        return _Verdict(ok=False, reason=f"the head file {name} is not a head record")
    if "mac" not in head:
        return _Verdict(
            ok=False,
            reason=f"the head file {name} carries no MAC (written by hand, or by a defiagent "
            "older than the authenticated head)",
            remedy=aside,
        )
    if hk.key is None:
        return _Verdict(
            ok=False,
            reason=f"the head file {name} cannot be authenticated because its key file "
            f"{hk.path} is missing (deleted, or the state dir was moved)",
            remedy=f"restore the key file, or set {HEAD_KEY_ENV} to the key the log was written with",
        )
    seq, hash_, next_ = head["seq"], head["hash"], head.get("next")
    if not hmac.compare_digest(head_mac(hk.key, seq, hash_, next_), head["mac"]):
        return _Verdict(
            ok=False,
            reason=f"the head file {name} does not authenticate (its MAC does not check): it "
            f"was forged or rewritten, or written with another key than {hk.source}",
        )
    good = _Verdict(ok=True, authenticated=True, seq=seq)

    def bad(line: int, reason: str) -> _Verdict:
        return _Verdict(ok=False, authenticated=True, seq=seq, line=line, reason=reason)

    if seq > tail.seq:
        return bad(
            count + 1,
            f"the log ends at record {tail.seq} but its authenticated head names record {seq}: "
            "records were cut off the end",
        )
    if seq == tail.seq:
        if hash_ != tail.hash:
            return bad(
                count, "the last record is not the one its authenticated head names (rewritten)"
            )
        return good
    if seq == tail.seq - 1 and next_ == tail.hash and tail.prev == hash_:
        return good  # a crash after the record was written, before the head named it
    if hash_at is not None and seq >= 0 and hash_at(seq) != hash_:
        return bad(seq + 1, "the record the head file names has a different hash (rewritten)")
    return bad(
        seq + 2,
        f"records {seq + 1} to {tail.seq} come after the authenticated head (record {seq}) "
        "and are not covered by it: they were appended without the key",
    )


class AuditLog:
    """Implements AuditSink. Safe across threads and processes (flock on the file).

    Opening refuses (Refused) a log that does not match its authenticated head: records cut
    off the end, a forged or missing head, records appended without the key, a torn last
    line. `head_key` is a reference (`env:NAME`, `keyring:service/name`, `file:PATH`); by
    default $DEFIAGENT_AUDIT_HEAD_KEY, else a key file made for this state dir on first use.
    """

    key: HeadKey  # set by _open

    def __init__(self, path: Path | str, *, head_key: str | None = None) -> None:
        self._open(path, head_key)
        try:
            with self._flocked():
                tail = self._tail()
                if self.key.key is None:  # made meanwhile by another process opening the log?
                    self.key = load_head_key(self.path, head_key)
                if self.key.key is None and tail.seq == -1 and not self.head_path.exists():
                    # A brand-new log: its key is made now. Never for a log that already has
                    # records or a head: a new key would only hide that the old one is gone.
                    assert self.key.path is not None  # no key: a file source, with its path
                    self.key = HeadKey(
                        source=self.key.source,
                        key=_create_key_file(self.key.path),
                        path=self.key.path,
                    )
                self._require_head(tail)
        except BaseException:
            self.close()
            raise

    def _open(self, path: Path | str, head_key: str | None) -> None:
        self.path = Path(path)
        self.head_path = self.path.with_name(self.path.name + ".head")
        self._lock = threading.Lock()
        self._fd: int | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise InfraError(f"the audit log {self.path} cannot be opened: {exc}") from exc
        self.key = load_head_key(self.path, head_key)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            raise InfraError(f"the audit log {self.path} cannot be opened: {exc}") from exc
        with contextlib.suppress(OSError):  # one made before the modes were enforced
            if stat.S_IMODE(os.fstat(fd).st_mode) & 0o077:
                os.fchmod(fd, 0o600)
        self._fd = fd

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def _open_fd(self) -> int:
        """The log file's descriptor, for the steps that run while it is open."""
        assert self._fd is not None  # record() refuses on a closed log before any step
        return self._fd

    @contextlib.contextmanager
    def _flocked(self) -> Iterator[None]:
        fcntl.flock(self._open_fd, fcntl.LOCK_EX)
        while self._replaced():
            # Pruned by another process meanwhile (a new file renamed over this one, see
            # defiagent.privacy.retention): follow the new file, or appends would be lost.
            fcntl.flock(self._open_fd, fcntl.LOCK_UN)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND)
            os.close(self._open_fd)
            self._fd = fd
            fcntl.flock(self._open_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._open_fd, fcntl.LOCK_UN)

    def _replaced(self) -> bool:
        """Is the open file no longer the one at `path` (renamed over by a prune)?"""
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            return False
        mine = os.fstat(self._open_fd)
        return (now.st_dev, now.st_ino) != (mine.st_dev, mine.st_ino)

    def _refusal(self, reason: str, remedy: str | None = None) -> Refused:
        return Refused(
            f"the audit log {self.path} does not match its authenticated head, so nothing "
            f"is appended to it: {reason}",
            remedy=remedy
            or f"see `defiagent audit-log verify {self.path}`; to start a new log, move this "
            "one and its head aside and keep them as evidence",
        )

    def _require_head(self, tail: _Tail) -> None:
        verdict = _judge_head(self.head_path, self.key, tail)
        if not verdict.ok:
            raise self._refusal(verdict.reason, verdict.remedy)

    def _tail(self) -> _Tail:
        """The last record, read from the file under the lock."""
        size = os.fstat(self._open_fd).st_size
        if size == 0:
            return _Tail(-1, GENESIS, None)
        chunk = min(size, 1 << 16)
        while True:
            data = os.pread(self._open_fd, chunk, size - chunk)
            if not data.endswith(b"\n"):
                raise Refused(
                    f"the audit log {self.path} ends in a partial line (a write cut off by a "
                    "crash, or tampering), so nothing is appended to it",
                    remedy=f"run `defiagent audit-log repair {self.path}`",
                )
            lines = data[:-1].split(b"\n")
            if len(lines) > 1 or chunk == size:
                break
            chunk = min(size, chunk * 4)
        try:
            last = json.loads(lines[-1])
            return _Tail(int(last["seq"]), str(last["hash"]), str(last["prev"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise self._refusal("its last line is not a record") from exc

    def record(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        clean = redact(_jsonable(payload))
        with self._lock:
            if self._fd is None:
                raise InfraError("the audit log is closed")
            with self._flocked():
                return self._append(kind, clean)

    def _append(self, kind: str, clean: Any) -> dict[str, Any]:
        """Under the lock: check the end against the head, then the three durable steps."""
        tail = self._tail()
        self._require_head(tail)  # another process (or a person) may have cut records off
        record = {
            "seq": tail.seq + 1,
            "ts": datetime.now(UTC).isoformat(timespec="microseconds"),
            "kind": kind,
            # Sealed in an encrypted state dir: the chain is over the ciphertext, so the log
            # verifies without the data key (state_crypto.files.seal_payload).
            "payload": seal_payload(self.path.parent, tail.seq + 1, clean),
            "prev": tail.hash,
        }
        # Round-trip through JSON so the hash covers exactly what is written.
        record = json.loads(json.dumps(record, default=str))
        record["hash"] = record_hash(record)
        line = json.dumps(record, separators=(",", ":"), default=str) + "\n"
        self._write_head(tail.seq, tail.hash, record["hash"], sync_dir=True)
        self._write_line(line.encode())
        os.fsync(self._open_fd)
        self._write_head(record["seq"], record["hash"], None)
        return record

    def _write_line(self, data: bytes) -> None:
        written = os.write(self._open_fd, data)
        if written != len(data):
            raise InfraError(f"the audit log {self.path} took {written} of {len(data)} bytes")

    def _write_head(
        self, seq: int, hash_: str, next_: str | None, *, sync_dir: bool = False
    ) -> None:
        assert self.key.key is not None
        head = {
            "v": 1,
            "seq": seq,
            "hash": hash_,
            "next": next_,
            "mac": head_mac(self.key.key, seq, hash_, next_),
        }
        tmp = self.head_path.with_name(self.head_path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, json.dumps(head).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.head_path)
        if sync_dir:  # the announcement is durable before the record it announces
            _fsync_dir(self.head_path.parent)


class AuditProblem(BaseModel):
    model_config = ConfigDict(frozen=True)

    line: int  # 1-based line number in the file (0: the head file or its key)
    reason: str


class AuditReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: str
    ok: bool
    records: int
    head: str | None = None  # hash of the last good record
    problem: AuditProblem | None = None
    head_authenticated: bool = False  # the head file's MAC checked under the key
    head_seq: int | None = None  # the record the authenticated head names
    key_source: str | None = None  # where the head key came from (never the key)
    repairable: bool = False  # only a torn last line, the rest intact: `repair_audit_log`
    pruned: int = 0  # records dropped by retention before the log's checkpoint


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with open(path, "rb") as fh:
        yield from enumerate(fh, start=1)


def verify_audit_log(
    path: Path | str, *, check_head: bool = True, head_key: str | None = None
) -> AuditReport:
    """Walk the chain, stop at the first line that breaks it, then check that the log ends
    where its authenticated head says (`head_key` as for `AuditLog`)."""
    path = Path(path)
    if not path.is_file():
        return AuditReport(
            path=str(path), ok=False, records=0, problem=AuditProblem(line=0, reason="no such file")
        )
    prev, last_prev, expected_seq, count = GENESIS, None, 0, 0
    first_seq = 0  # the first record's seq: more than 0 after a prune
    hashes: list[str] = []
    extra: dict[str, Any] = {}

    def bad(line: int, reason: str) -> AuditReport:
        head = prev if count else None
        problem = AuditProblem(line=line, reason=reason)
        return AuditReport(
            path=str(path), ok=False, records=count, head=head, problem=problem, **extra
        )

    torn: int | None = None
    for number, raw in _lines(path):
        if not raw.endswith(b"\n"):
            torn = number  # the last line: judged with the head below
            break
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
        if number == 1 and rec["kind"] == CHECKPOINT_KIND:
            # A log pruned by retention starts at the authenticated checkpoint of the
            # records it dropped: the chain goes on from the hash the checkpoint names.
            why = _checkpoint_problem(rec, path, check_head=check_head, head_key=head_key)
            if why:
                return bad(number, why)
            prev, last_prev, expected_seq = rec["hash"], rec["prev"], rec["seq"] + 1
            first_seq, extra["pruned"] = expected_seq, expected_seq
            continue
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
        last_prev = prev
        prev, expected_seq, count = rec["hash"], expected_seq + 1, count + 1
        hashes.append(prev)

    if not check_head:
        return (
            bad(torn, _TORN)
            if torn
            else AuditReport(
                path=str(path), ok=True, records=count, head=prev if count else None, **extra
            )
        )
    try:
        hk = load_head_key(path, head_key)
    except Refused as exc:  # a key file open to others, or not a key
        extra["key_source"] = head_key_reference(path, head_key)
        return bad(0, str(exc))
    tail = _Tail(first_seq + count - 1, prev, last_prev)

    def hash_at(seq: int) -> str | None:  # None: a record pruned away (or not there)
        index = seq - first_seq
        return hashes[index] if 0 <= index < len(hashes) else None

    verdict = _judge_head(path.with_name(path.name + ".head"), hk, tail, hash_at)
    extra.update(head_authenticated=verdict.authenticated, head_seq=verdict.seq)
    extra["key_source"] = hk.source
    if not verdict.ok:
        return bad(verdict.line, verdict.reason)
    if torn:
        # A write cut off by a crash: the chain before it is intact and the authenticated
        # head names its last complete record (or announces the torn one).
        extra["repairable"] = verdict.authenticated
        return bad(torn, _TORN)
    return AuditReport(
        path=str(path), ok=True, records=count, head=prev if count else None, **extra
    )


class AuditRepair(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: str
    repaired: bool
    line: int | None = None  # the torn line that was removed
    removed_bytes: int = 0
    removed_sha256: str | None = None  # of the removed bytes (their content is not kept)
    record: int | None = None  # the seq of the `audit-repair` record
    head: str | None = None


def repair_audit_log(path: Path | str, *, head_key: str | None = None) -> AuditRepair:
    """Remove a torn last line (a write cut off by a crash) and record what was removed, as
    an `audit-repair` record appended through the chain; the head is authenticated again.

    Refuses (Refused) anything else: a deleted, edited, inserted or reordered record, a
    head that does not authenticate. An intact log is left alone (`repaired=False`).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path} is not a file")
    log = AuditLog.__new__(AuditLog)
    log._open(path, head_key)
    try:
        with log._lock, log._flocked():
            report = verify_audit_log(path, head_key=head_key)
            if report.ok:
                return AuditRepair(path=str(path), repaired=False, head=report.head)
            problem = report.problem
            assert problem is not None  # a log that does not verify has a problem
            if not report.repairable:
                where = f"line {problem.line}" if problem.line else "its head"
                raise Refused(
                    f"{path} is not repairable at {where}: {problem.reason}; only a torn last "
                    "line can be repaired, never a deleted, edited, inserted or reordered record"
                )
            size = os.fstat(log._open_fd).st_size
            start = _start_of_last_line(log._open_fd, size)
            digest, position = hashlib.sha256(), start
            while position < size:
                chunk = os.pread(log._open_fd, min(1 << 20, size - position), position)
                digest.update(chunk)
                position += len(chunk)
            os.ftruncate(log._open_fd, start)
            os.fsync(log._open_fd)
            removed = {
                "reason": "a torn last line (no newline): a write cut off by a crash",
                "line": problem.line,
                "removed_bytes": size - start,
                "removed_sha256": digest.hexdigest(),
            }
            record = log._append("audit-repair", removed)
    finally:
        log.close()
    return AuditRepair(
        path=str(path),
        repaired=True,
        line=problem.line,
        removed_bytes=size - start,
        removed_sha256=removed["removed_sha256"],
        record=record["seq"],
        head=record["hash"],
    )


def _start_of_last_line(fd: int, size: int) -> int:
    """The offset just after the last newline (0 if there is none)."""
    end = size
    while end > 0:
        begin = max(0, end - (1 << 16))
        index = os.pread(fd, end - begin, begin).rfind(b"\n")
        if index >= 0:
            return begin + index + 1
        end = begin
    return 0
