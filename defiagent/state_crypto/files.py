"""Sealing and opening the state files' contents, for the layers that write them.

Each layer keeps its own format and asks here for each value: a JSON line (`seal_line`),
a JSON document (`seal_json`), a journal column (`seal_column`), an audit payload
(`seal_payload`). In a plaintext state dir the value passes through unchanged; a sealed
value found there (its key file deleted) is refused, never read as missing. In an
encrypted one every value must open with its role and binding, or the file is refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from defiagent.errors import Refused
from defiagent.state_crypto.active import cipher_for
from defiagent.state_crypto.cipher import StateCipher, UnsealError, is_sealed
from defiagent.state_crypto.keyfile import FILENAME

SEALED_FIELD = "sealed"  # a sealed JSON document or audit payload: {"sealed": "dfa-enc1:..."}


def _no_key_file(where: str, folder: Path) -> Refused:
    return Refused(
        f"{where} is encrypted but the state dir {folder} has no {FILENAME}, so it cannot be "
        "read and the agent does not start",
        remedy=f"restore {FILENAME} from a backup (it holds the wrapped data keys)",
    )


def _unsealable(where: str, why: str, cipher: StateCipher) -> Refused:
    return Refused(
        f"{where} does not decrypt with the state dir's key ({cipher.source}): {why}",
        remedy="restore it from a backup; a wrong key is never answered by starting afresh",
    )


def seal_line(path: Path, line: str) -> str:
    cipher = cipher_for(path.parent)
    return line if cipher is None else cipher.seal_text(path.name, line)


def open_line(path: Path, number: int, line: str) -> str:
    cipher = cipher_for(path.parent)
    where = f"line {number} of {path}"
    if cipher is None:
        if is_sealed(line.strip()):
            raise _no_key_file(where, path.parent)
        return line
    try:
        return cipher.open_text(path.name, line.strip())
    except UnsealError as exc:
        raise _unsealable(where, str(exc), cipher) from None


def seal_json(path: Path, data: Any) -> Any:
    cipher = cipher_for(path.parent)
    if cipher is None:
        return data
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return {SEALED_FIELD: cipher.seal_text(path.name, text)}


def _sealed_value(data: Any) -> str | None:
    if (
        isinstance(data, dict)
        and set(data) == {SEALED_FIELD}
        and isinstance(data[SEALED_FIELD], str)
    ):
        return str(data[SEALED_FIELD])
    return None


def open_json(path: Path, data: Any) -> Any:
    cipher = cipher_for(path.parent)
    token = _sealed_value(data)
    if cipher is None:
        if token is not None:
            raise _no_key_file(str(path), path.parent)
        return data
    if token is None:
        if cipher.accept_plaintext:
            return data
        raise _unsealable(str(path), "it is not encrypted, though the state dir is", cipher)
    try:
        return json.loads(cipher.open_text(path.name, token))
    except UnsealError as exc:
        raise _unsealable(str(path), str(exc), cipher) from None


# -- the journal's columns ---------------------------------------------------------------


def seal_column(cipher: StateCipher | None, role: str, bind: str, value: str) -> str:
    return value if cipher is None else cipher.seal_text(f"journal.{role}", value, bind)


def open_column(cipher: StateCipher | None, path: Path, role: str, bind: str, value: str) -> str:
    where = f"the journal {path} ({role} of {bind})"
    if cipher is None:
        if is_sealed(value):
            raise _no_key_file(where, path.parent)
        return value
    try:
        return cipher.open_text(f"journal.{role}", value, bind)
    except UnsealError as exc:
        raise _unsealable(where, str(exc), cipher) from None


# -- audit payloads: the chain covers the sealed form, so it verifies without the key ------


def seal_payload(folder: Path, seq: int, payload: Any) -> Any:
    cipher = cipher_for(folder)
    if cipher is None:
        return payload
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return {SEALED_FIELD: cipher.seal_text("audit.payload", text, str(seq))}


def is_sealed_payload(payload: Any) -> bool:
    return _sealed_value(payload) is not None


def open_payload(folder: Path, record: dict[str, Any]) -> Any:
    """A record's payload in clear. Records written before the state dir was encrypted stay
    plaintext (the hash chain covers them as they are), so a plaintext payload is read as is."""
    token = _sealed_value(record.get("payload"))
    if token is None:
        return record.get("payload")
    cipher = cipher_for(folder)
    where = f"audit record {record.get('seq')} in {Path(folder)}"
    if cipher is None:
        raise _no_key_file(where, Path(folder))
    try:
        return json.loads(cipher.open_text("audit.payload", token, str(record.get("seq"))))
    except UnsealError as exc:
        raise _unsealable(where, str(exc), cipher) from None
