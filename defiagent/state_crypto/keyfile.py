"""`state_dir/state-key.json`: the state dir's data keys, each wrapped by the backend.

Nothing in it is secret: the data keys are there only wrapped, and the backend is named by
its settings (a keyring entry, a KMS key id, a Vault URL and transit key, a token
*reference*). Its presence is what makes a state dir encrypted: every file layer asks
`defiagent.state_crypto.active.cipher_for(folder)` and seals when it answers.

`pending` is set while `defiagent state rekey` rewrites the files and cleared when it is
done; the agent refuses to start on a pending key file (run the rekey again to finish).
"""

from __future__ import annotations

import base64
import hmac
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from defiagent.errors import Refused
from defiagent.state_crypto.backends.base import KeyBackend, wrong_key
from defiagent.state_crypto.cipher import key_check

FILENAME = "state-key.json"
WHAT = "state key file"


class WrappedKey(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[0-9a-f]{16}$")
    wrapped: str  # base64 of what the backend returned
    check: str  # cipher.key_check of the data key: a swapped or wrong unwrap is caught
    created_at: str

    def blob(self) -> bytes:
        return base64.b64decode(self.wrapped)


class StateKeyFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = 1
    backend: str
    params: dict[str, str]
    current: str
    keys: list[WrappedKey] = Field(min_length=1)
    pending: bool = False  # a rekey is rewriting the files
    pending_from_plaintext: bool = False  # ... and some of them may still be plaintext

    def wrap_context(self, key_id: str) -> dict[str, str]:
        return wrap_context(key_id)


def wrapped_key(backend: KeyBackend, key_id: str, key: bytes, *, create: bool) -> WrappedKey:
    blob = backend.wrap(key, wrap_context(key_id), create=create)
    return WrappedKey(
        id=key_id,
        wrapped=base64.b64encode(blob).decode(),
        check=key_check(key, key_id),
        created_at=now_iso(),
    )


def unwrapped_key(backend: KeyBackend, wrapped: WrappedKey) -> bytes:
    key = backend.unwrap(wrapped.blob(), wrap_context(wrapped.id))
    if not hmac.compare_digest(key_check(key, wrapped.id), wrapped.check):
        raise wrong_key(backend.reference(), f"what it unwraps is not data key {wrapped.id}")
    return key


def wrap_context(key_id: str) -> dict[str, str]:
    return {"purpose": "defiagent-state-data-key", "key_id": key_id}


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def key_file_path(state_dir: Path) -> Path:
    return Path(state_dir) / FILENAME


def read_key_file(state_dir: Path) -> StateKeyFile | None:
    from defiagent.operator.files import read_private_json  # not at import: a cycle

    path = key_file_path(state_dir)
    data = read_private_json(path, WHAT)
    if data is None:
        return None
    try:
        return StateKeyFile.model_validate(data)
    except ValidationError as exc:
        raise Refused(
            f"the {WHAT} {path} is not a valid key file ({exc.errors()[0]['msg']}), so the "
            "state dir's encrypted files cannot be read"
        ) from None


def write_key_file(state_dir: Path, key_file: StateKeyFile) -> None:
    from defiagent.operator.files import write_private_json

    write_private_json(key_file_path(state_dir), key_file.model_dump())
