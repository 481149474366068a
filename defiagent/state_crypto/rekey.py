"""`defiagent state rekey`: move a state dir to a new data key wrapped by the configured
backend (also how a plaintext state dir is first encrypted).

Never a half-rewritten state, by ordering:
1. the key file is rewritten (one atomic rename) with every old data key and the new one,
   all wrapped by the new backend, and `pending` set: from here on every file opens,
   whether a step below has rewritten it or not;
2. each file is rewritten whole under the new key: the JSON-lines files and the operator
   enrolment by rename, the journal's sealed columns in one sqlite transaction;
3. the key file is rewritten without `pending` and without the old data keys that no audit
   record needs (audit records are never rewritten: the hash chain covers them as written).
A crash leaves `pending` set: the agent refuses to start and saying so, and the same
command run again finishes the job. The agent must be stopped: the journal's lock is held
throughout, as is the operator's.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from defiagent.errors import ConfigError, InfraError
from defiagent.state_crypto.active import register, unlock
from defiagent.state_crypto.backends.registry import build_backend
from defiagent.state_crypto.cipher import StateCipher, new_data_key, new_key_id, sealed_key_id
from defiagent.state_crypto.config import EncryptionConfig
from defiagent.state_crypto.keyfile import (
    StateKeyFile,
    read_key_file,
    wrapped_key,
    write_key_file,
)

if TYPE_CHECKING:
    from defiagent.execution.journal import Journal

JSONL_FILES = ("trades.jsonl", "spend.jsonl", "portfolio.jsonl")
JOURNAL_FILE = "journal.sqlite"
ENROLMENT_FILE = "operator-totp.json"
AUDIT_FILE = "audit.jsonl"


class RekeyResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    state_dir: str
    was: str | None  # the key-encryption key before ("plaintext" when there was none)
    now: str
    data_key: str  # the new current data key's id
    kept_keys: list[str]  # older data keys still needed by audit records
    dropped_keys: list[str]
    rewritten: dict[str, int]  # file -> values re-encrypted


@contextlib.contextmanager
def _journal_locked(state_dir: Path) -> Iterator[Journal | None]:
    """The journal (open, so its lock is ours) or, without one, its lock file: no agent
    runs on this state dir while it is rekeyed."""
    path = state_dir / JOURNAL_FILE
    if path.exists():
        from defiagent.execution.journal import Journal

        with Journal(path) as journal:
            yield journal
        return
    fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InfraError(
                f"an agent is running on {state_dir}; stop it before a rekey"
            ) from None
        yield None
    finally:
        os.close(fd)


def _rewrite_jsonl(path: Path) -> int:
    from defiagent.agent.state import state_lines
    from defiagent.operator.files import write_atomic
    from defiagent.state_crypto.files import seal_line

    lines = [line for _, line in state_lines(path, path.stem)]
    write_atomic(path, "".join(seal_line(path, line) + "\n" for line in lines), mode=0o600)
    return len(lines)


def _rewrite_json(path: Path) -> int:
    from defiagent.operator.files import read_private_json, write_private_json
    from defiagent.state_crypto.files import open_json, seal_json

    data = open_json(path, read_private_json(path, "state file"))
    write_private_json(path, seal_json(path, data))
    return 1


def audit_key_ids(path: Path) -> set[str]:
    """The data keys the audit log's sealed payloads were made with."""
    found: set[str] = set()
    if not path.is_file():
        return found
    with open(path, "rb") as fh:
        for raw in fh:
            with contextlib.suppress(ValueError):
                record = json.loads(raw)
                payload = record.get("payload") if isinstance(record, dict) else None
                if isinstance(payload, dict) and isinstance(payload.get("sealed"), str):
                    key_id = sealed_key_id(payload["sealed"])
                    if key_id:
                        found.add(key_id)
    return found


def rekey_state_dir(state_dir: Path, settings: EncryptionConfig) -> RekeyResult:
    state_dir = Path(state_dir)
    if not settings.enabled:
        raise ConfigError(
            "[state.encryption] is off: a rekey needs the backend to move to, with enabled = true"
        )
    if not state_dir.is_dir():
        raise ConfigError(f"the state dir {state_dir} does not exist")
    from defiagent.operator.files import state_lock

    with state_lock(state_dir):
        old_file = read_key_file(state_dir)
        old = unlock(state_dir, allow_pending=True) if old_file is not None else None
        register(state_dir, old)  # a rekey that was interrupted is opened to finish it
        with _journal_locked(state_dir) as journal:
            result = _rekey(state_dir, settings, old_file, old, journal)
    from defiagent.monitoring.audit_log import AuditLog

    with AuditLog(state_dir / AUDIT_FILE) as audit:
        audit.record("state-rekey", result.model_dump(exclude={"state_dir"}))
    return result


def _rekey(
    state_dir: Path,
    settings: EncryptionConfig,
    old_file: StateKeyFile | None,
    old: StateCipher | None,
    journal: Journal | None,
) -> RekeyResult:
    from_plaintext = old is None or (old_file is not None and old_file.pending_from_plaintext)
    backend = build_backend(settings.backend, settings.backend_params())
    keys = old.export_keys() if old is not None else {}
    new_id = new_key_id()
    keys[new_id] = new_data_key()

    def key_file(ids: list[str], *, pending: bool) -> StateKeyFile:
        wrapped = [wrapped_key(backend, i, keys[i], create=True) for i in ids]
        return StateKeyFile(
            backend=settings.backend,
            params=settings.backend_params(),
            current=new_id,
            keys=wrapped,
            pending=pending,
            pending_from_plaintext=pending and from_plaintext,
        )

    # 1. every key, wrapped by the new backend; pending until the files are rewritten
    write_key_file(state_dir, key_file(list(keys), pending=True))
    cipher = StateCipher(keys, new_id, source=backend.reference(), accept_plaintext=from_plaintext)
    register(state_dir, cipher)
    # 2. each file whole under the new data key
    rewritten: dict[str, int] = {}
    for name in JSONL_FILES:
        if (state_dir / name).is_file():
            rewritten[name] = _rewrite_jsonl(state_dir / name)
    if (state_dir / ENROLMENT_FILE).is_file():
        rewritten[ENROLMENT_FILE] = _rewrite_json(state_dir / ENROLMENT_FILE)
    if journal is not None:
        rewritten[JOURNAL_FILE] = journal.reseal(cipher)
    # 3. done: only the keys still needed (the new one, and the audit records')
    needed = audit_key_ids(state_dir / AUDIT_FILE)
    kept = [i for i in keys if i != new_id and i in needed]
    dropped = [i for i in keys if i != new_id and i not in needed]
    write_key_file(state_dir, key_file([*kept, new_id], pending=False))
    final = StateCipher({i: keys[i] for i in (*kept, new_id)}, new_id, source=backend.reference())
    register(state_dir, final)
    return RekeyResult(
        state_dir=str(state_dir),
        was=old.source if old is not None else "plaintext",
        now=backend.reference(),
        data_key=new_id,
        kept_keys=kept,
        dropped_keys=dropped,
        rewritten=rewritten,
    )
