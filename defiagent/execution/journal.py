"""The write-ahead journal: what was planned, signed and sent, durable before each next step.

SQLite in WAL mode with synchronous=FULL: every commit is fsync'd before the call returns,
so after a crash the journal holds every step that happened before it (an intent is written
as planned before signing, the signed raw bytes before broadcasting). Keyed by
`PlannedCall.journal_key`; a key is inserted once, so no call is executed twice.

States of an entry:
    planned -> signed -> sent -> confirmed | failed | cancelled | dropped
    planned | signed -> aborted        (stopped before broadcast: nothing reached the network)
    sent -> expired                    (private: not included by its maxBlockNumber)
Each signed transaction is an attempt (original, replacement, cancel) with its raw bytes;
a replacement's predecessors end `replaced`.

One process at a time: the journal takes an exclusive flock on `<path>.lock`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import stat
import time
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from defiagent.errors import InfraError, Refused
from defiagent.execution.models import PlannedCall
from defiagent.state_crypto.active import cipher_for
from defiagent.state_crypto.cipher import StateCipher
from defiagent.state_crypto.files import open_column, seal_column


class State(StrEnum):
    PLANNED = "planned"
    SIGNED = "signed"
    SENT = "sent"
    CONFIRMED = "confirmed"
    FAILED = "failed"  # mined but reverted: the nonce is used, the intent is over
    CANCELLED = "cancelled"  # a 0-value self-transfer took the nonce
    DROPPED = "dropped"  # the nonce was taken by a transaction this journal did not send
    ABORTED = "aborted"  # stopped before any broadcast
    EXPIRED = "expired"  # a private submission not included in its window; its nonce is free


IN_FLIGHT = (State.SIGNED, State.SENT)
FINAL = (
    State.CONFIRMED,
    State.FAILED,
    State.CANCELLED,
    State.DROPPED,
    State.ABORTED,
    State.EXPIRED,
)


class AttemptKind(StrEnum):
    ORIGINAL = "original"
    REPLACEMENT = "replacement"
    CANCEL = "cancel"


class Attempt(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: str
    seq: int
    kind: AttemptKind
    tx_hash: str
    raw: str
    nonce: int
    gas: int
    max_fee_per_gas: int
    max_priority_fee_per_gas: int
    state: str = "pending"  # pending | mined | replaced
    created_at: float = 0.0


class Entry(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: str
    intent_id: str
    sender: str
    chain_id: int
    call: PlannedCall
    state: State
    nonce: int | None = None
    tx_hash: str | None = None  # the attempt that was mined (or the latest one signed)
    block_number: int | None = None
    gas_used: int | None = None
    reason: str = ""
    created_at: float
    updated_at: float


_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,
    intent_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    chain_id INTEGER NOT NULL,
    call_json TEXT NOT NULL,
    state TEXT NOT NULL,
    nonce INTEGER,
    tx_hash TEXT,
    block_number INTEGER,
    gas_used INTEGER,
    reason TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_state ON entries (state, sender);
CREATE INDEX IF NOT EXISTS entries_intent ON entries (intent_id);
CREATE TABLE IF NOT EXISTS attempts (
    key TEXT NOT NULL REFERENCES entries (key),
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    tx_hash TEXT NOT NULL,  -- not unique: a reused (never broadcast) nonce can sign the same bytes
    raw TEXT NOT NULL,
    nonce INTEGER NOT NULL,
    gas INTEGER NOT NULL,
    max_fee_per_gas TEXT NOT NULL,
    max_priority_fee_per_gas TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    created_at REAL NOT NULL,
    PRIMARY KEY (key, seq)
);
CREATE INDEX IF NOT EXISTS attempts_hash ON attempts (tx_hash);
"""
_ENTRY_COLUMNS = (
    "key, intent_id, sender, chain_id, call_json, state, nonce, tx_hash, block_number, "
    "gas_used, reason, created_at, updated_at"
)
_ATTEMPT_COLUMNS = (
    "key, seq, kind, tx_hash, raw, nonce, gas, max_fee_per_gas, max_priority_fee_per_gas, "
    "state, created_at"
)


def _make_private(path: Path, *, create: bool) -> None:
    """Make `path` 0600 (creating it empty, 0600, when `create`), whatever the umask.

    By path, never by opening it: closing any descriptor of a file would drop the POSIX
    locks sqlite holds on it in this process.
    """
    if create:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))  # before sqlite opens it
    with contextlib.suppress(FileNotFoundError):
        if stat.S_IMODE(path.stat().st_mode) != 0o600:
            os.chmod(path, 0o600)


class Journal:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # An encrypted state dir seals the planned call and the signed raw bytes (the
        # columns the queries never search); None: plaintext, as before.
        self._cipher = cipher_for(self.path.parent)
        self._lock_fd: int | None = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(self._lock_fd)
            raise InfraError(
                f"another executor is using the journal {self.path}; only one may run at a time"
            ) from exc
        try:
            _make_private(Path(f"{self.path}.lock"), create=False)  # one made before 0600
            existed = self.path.exists()
            if existed and self.path.stat().st_size == 0:
                # sqlite writes its header when the journal is made: an empty file is one
                # that was truncated, never a new journal to start quietly over.
                raise self._damaged("it is an empty file")
            # The database exists, 0600, before sqlite opens it: sqlite gives its -wal and
            # -shm files the database's mode (they are made private again below anyway).
            _make_private(self.path, create=True)
            # isolation_level=None: we issue BEGIN IMMEDIATE / COMMIT ourselves.
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # fsync the WAL on every commit
            self._db.execute("PRAGMA foreign_keys=ON")
            if existed:
                problems = [r[0] for r in self._db.execute("PRAGMA integrity_check")]
                if problems != ["ok"]:
                    raise self._damaged(f"integrity check: {problems[0]}")
            self._db.executescript(_SCHEMA)
            for suffix in ("-wal", "-shm"):  # they exist from the first statement on
                _make_private(Path(f"{self.path}{suffix}"), create=False)
        except Refused:
            self.close()
            raise
        except sqlite3.DatabaseError as exc:
            self.close()
            name = getattr(exc, "sqlite_errorname", None) or ""
            if name.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")):  # not I/O: the content
                raise self._damaged(str(exc)) from exc
            raise InfraError(f"the journal {self.path} cannot be opened: {exc}") from exc
        except (sqlite3.Error, OSError) as exc:
            self.close()
            raise InfraError(f"the journal {self.path} cannot be opened: {exc}") from exc

    def _damaged(self, why: str) -> Refused:
        """A journal that cannot be read whole is never replaced by a new, empty one: what
        earlier runs signed and sent would be forgotten, and an intent could go out twice."""
        return Refused(
            f"the journal {self.path} is damaged ({why}), so what earlier runs signed and "
            "sent is unknown and the agent does not start",
            remedy=f"restore it from a backup, or rebuild it with `sqlite3 {self.path} .recover "
            f"| sqlite3 {self.path}.recovered` and move that into place; delete it only if "
            "no transaction was ever sent from this state dir",
        )

    def close(self) -> None:
        db = getattr(self, "_db", None)
        if db is not None:
            db.close()
            del self._db  # closed: no connection, as when __init__ failed before opening it
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise InfraError(f"the journal {self.path} could not record a step: {exc}") from exc

    # -- writes ----------------------------------------------------------------------------
    def plan(self, call: PlannedCall, chain_id: int) -> tuple[Entry, bool]:
        """Write the call as planned; (entry, False) if its key was already journaled."""
        now = time.time()
        with self._write() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO entries (key, intent_id, sender, chain_id, call_json, "
                "state, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    call.journal_key,
                    call.intent_id,
                    call.sender,
                    chain_id,
                    seal_column(self._cipher, "call", call.journal_key, call.model_dump_json()),
                    State.PLANNED,
                    now,
                    now,
                ),
            )
            created = cursor.rowcount == 1
        entry = self.get(call.journal_key)
        assert entry is not None
        return entry, created

    def add_attempt(self, attempt: Attempt) -> None:
        """Record a signed transaction (before it is broadcast); a first one moves to signed."""
        with self._write() as db:
            db.execute(
                f"INSERT INTO attempts ({_ATTEMPT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
                (
                    attempt.key,
                    attempt.seq,
                    attempt.kind,
                    attempt.tx_hash,
                    seal_column(
                        self._cipher, "raw", _attempt_bind(attempt.key, attempt.seq), attempt.raw
                    ),
                    attempt.nonce,
                    attempt.gas,
                    str(attempt.max_fee_per_gas),
                    str(attempt.max_priority_fee_per_gas),
                    attempt.state,
                    attempt.created_at or time.time(),
                ),
            )
            db.execute(
                "UPDATE entries SET state = CASE WHEN state = ? THEN ? ELSE state END, "
                "nonce = ?, tx_hash = ?, updated_at = ? WHERE key = ?",
                (
                    State.PLANNED,
                    State.SIGNED,
                    attempt.nonce,
                    attempt.tx_hash,
                    time.time(),
                    attempt.key,
                ),
            )

    def set_state(self, key: str, state: State, *, reason: str = "") -> None:
        with self._write() as db:
            db.execute(
                "UPDATE entries SET state = ?, reason = ?, updated_at = ? WHERE key = ?",
                (state, reason, time.time(), key),
            )

    def finish(
        self,
        key: str,
        state: State,
        *,
        tx_hash: str | None = None,
        block_number: int | None = None,
        gas_used: int | None = None,
        reason: str = "",
    ) -> None:
        """Close an entry; the mined attempt is marked mined and every other one replaced."""
        with self._write() as db:
            db.execute(
                "UPDATE entries SET state = ?, tx_hash = COALESCE(?, tx_hash), block_number = ?, "
                "gas_used = ?, reason = ?, updated_at = ? WHERE key = ?",
                (state, tx_hash, block_number, gas_used, reason, time.time(), key),
            )
            if tx_hash is not None:
                db.execute(
                    "UPDATE attempts SET state = CASE WHEN tx_hash = ? THEN 'mined' "
                    "ELSE 'replaced' END WHERE key = ?",
                    (tx_hash, key),
                )

    # -- reads -----------------------------------------------------------------------------
    def get(self, key: str) -> Entry | None:
        row = self._db.execute(
            f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE key = ?",  # noqa: S608
            (key,),
        ).fetchone()
        return self._entry_row(row) if row else None

    def entries(self, states: tuple[State, ...] | None = None) -> list[Entry]:
        sql = f"SELECT {_ENTRY_COLUMNS} FROM entries"  # noqa: S608
        args: tuple[State, ...] = ()
        if states:
            sql += f" WHERE state IN ({', '.join('?' * len(states))})"
            args = tuple(states)
        return [self._entry_row(r) for r in self._db.execute(sql + " ORDER BY created_at", args)]

    def for_intent(self, intent_id: str) -> list[Entry]:
        rows = self._db.execute(
            f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE intent_id = ? ORDER BY created_at",  # noqa: S608
            (intent_id,),
        )
        return [self._entry_row(r) for r in rows]

    def attempts(self, key: str) -> list[Attempt]:
        rows = self._db.execute(
            f"SELECT {_ATTEMPT_COLUMNS} FROM attempts WHERE key = ? ORDER BY seq",  # noqa: S608
            (key,),
        )
        return [self._attempt_row(r) for r in rows]

    def _entry_row(self, row: tuple[Any, ...]) -> Entry:
        call_json = open_column(self._cipher, self.path, "call", row[0], row[4])
        return _entry((*row[:4], call_json, *row[5:]))

    def _attempt_row(self, row: tuple[Any, ...]) -> Attempt:
        raw = open_column(self._cipher, self.path, "raw", _attempt_bind(row[0], row[1]), row[4])
        return _attempt((*row[:4], raw, *row[5:]))

    def reseal(self, cipher: StateCipher) -> int:
        """Rewrite every sealed column under `cipher`'s current data key (it also holds the
        old keys), in one transaction: for `defiagent state rekey`, the journal is whole
        under the old key or the new one. Returns the number of values rewritten."""
        self._cipher = cipher
        entries = self._db.execute("SELECT key, call_json FROM entries").fetchall()
        attempts = self._db.execute("SELECT key, seq, raw FROM attempts").fetchall()
        count = 0
        with self._write() as db:
            for key, value in entries:
                clear = open_column(self._cipher, self.path, "call", key, value)
                db.execute(
                    "UPDATE entries SET call_json = ? WHERE key = ?",
                    (seal_column(self._cipher, "call", key, clear), key),
                )
                count += 1
            for key, seq, value in attempts:
                bind = _attempt_bind(key, seq)
                clear = open_column(self._cipher, self.path, "raw", bind, value)
                db.execute(
                    "UPDATE attempts SET raw = ? WHERE key = ? AND seq = ?",
                    (seal_column(self._cipher, "raw", bind, clear), key, seq),
                )
                count += 1
        try:  # the old values must not linger in free pages or the WAL
            self._db.execute("VACUUM")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            raise InfraError(f"the journal {self.path} could not be compacted: {exc}") from exc
        return count

    def highest_held_nonce(self, sender: str) -> int | None:
        """The highest nonce an in-flight entry of `sender` holds (signed or sent)."""
        row = self._db.execute(
            "SELECT MAX(nonce) FROM entries WHERE sender = ? AND state IN (?, ?)",
            (sender, *IN_FLIGHT),
        ).fetchone()
        return row[0] if row and row[0] is not None else None


def _attempt_bind(key: str, seq: int) -> str:
    """What a sealed raw transaction is bound to: its entry and attempt."""
    return f"{key}#{seq}"


def _entry(row: tuple[Any, ...]) -> Entry:
    (
        key,
        intent_id,
        sender,
        chain_id,
        call_json,
        state,
        nonce,
        tx_hash,
        block,
        gas,
        reason,
        c,
        u,
    ) = row
    return Entry(
        key=key,
        intent_id=intent_id,
        sender=sender,
        chain_id=chain_id,
        call=PlannedCall.model_validate(json.loads(call_json)),
        state=State(state),
        nonce=nonce,
        tx_hash=tx_hash,
        block_number=block,
        gas_used=gas,
        reason=reason,
        created_at=c,
        updated_at=u,
    )


def _attempt(row: tuple[Any, ...]) -> Attempt:
    key, seq, kind, tx_hash, raw, nonce, gas, max_fee, tip, state, created = row
    return Attempt(
        key=key,
        seq=seq,
        kind=AttemptKind(kind),
        tx_hash=tx_hash,
        raw=raw,
        nonce=nonce,
        gas=gas,
        max_fee_per_gas=int(max_fee),
        max_priority_fee_per_gas=int(tip),
        state=state,
        created_at=created,
    )
