"""The open state ciphers of this process, one per state dir, and how one is opened.

The file layers (journal, JSON-lines ledgers, operator enrolment, audit log) call
`cipher_for(folder)`: None for a plaintext state dir, else the cipher whose data keys were
unwrapped once, when the state dir was first touched. The agent opens it at start with
`open_state_encryption` (which also makes the key file of a new, encrypted state dir);
any other command opens it from the key file alone, with the backend it names.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from defiagent.errors import ConfigError, Refused
from defiagent.state_crypto.backends.registry import build_backend
from defiagent.state_crypto.cipher import StateCipher, new_data_key, new_key_id
from defiagent.state_crypto.config import EncryptionConfig
from defiagent.state_crypto.keyfile import (
    FILENAME,
    StateKeyFile,
    read_key_file,
    unwrapped_key,
    wrapped_key,
    write_key_file,
)

# The state files that hold something sensitive: a new key file is made only for a state
# dir that has none of them yet (an existing one is encrypted by `state rekey`).
SENSITIVE_FILES = (
    "journal.sqlite",
    "trades.jsonl",
    "spend.jsonl",
    "portfolio.jsonl",
    "operator-totp.json",
    "audit.jsonl",
)

_open: dict[Path, StateCipher] = {}
_lock = threading.Lock()


def _key(folder: Path | str) -> Path:
    return Path(os.path.abspath(folder))


def cipher_for(folder: Path | str) -> StateCipher | None:
    """The cipher of the state dir `folder`, None when it is not encrypted (no key file)."""
    key = _key(folder)
    cipher = _open.get(key)
    if cipher is not None:
        return cipher
    if not os.path.lexists(key / FILENAME):
        return None
    with _lock:
        cipher = _open.get(key)
        if cipher is None:
            cipher = unlock(key)
            _open[key] = cipher
    return cipher


def register(folder: Path | str, cipher: StateCipher | None) -> None:
    """Use `cipher` for `folder` in this process (None forgets it: read the key file again)."""
    with _lock:
        if cipher is None:
            _open.pop(_key(folder), None)
        else:
            _open[_key(folder)] = cipher


def unlock(state_dir: Path, *, allow_pending: bool = False) -> StateCipher:
    """Unwrap every data key the key file lists, through the backend it names."""
    kf = read_key_file(state_dir)
    if kf is None:
        raise Refused(f"the state dir {state_dir} has no {FILENAME}")
    if kf.pending and not allow_pending:
        raise Refused(
            f"a `defiagent state rekey` of {state_dir} was interrupted before it finished, so "
            "its files may be under two keys and the agent does not start",
            remedy="run the same `defiagent state rekey` again to finish it",
        )
    backend = build_backend(kf.backend, kf.params)
    keys = {w.id: unwrapped_key(backend, w) for w in kf.keys}
    return StateCipher(
        keys,
        kf.current,
        source=backend.reference(),
        accept_plaintext=kf.pending and kf.pending_from_plaintext,
    )


def present_files(state_dir: Path) -> list[str]:
    return [
        name
        for name in SENSITIVE_FILES
        if (Path(state_dir) / name).exists() and (Path(state_dir) / name).stat().st_size > 0
    ]


def _holds_sealed(path: Path) -> bool:
    """Does the file hold a sealed value (its first MiB: enough for every layer's first)?"""
    from defiagent.state_crypto.cipher import PREFIX

    with open(path, "rb") as fh:
        return PREFIX.encode() in fh.read(1 << 20)


def create_key_file(state_dir: Path, settings: EncryptionConfig) -> StateCipher:
    """A new data key, wrapped by the configured backend, saved as the key file."""
    backend = build_backend(settings.backend, settings.backend_params())
    key_id, key = new_key_id(), new_data_key()
    write_key_file(
        state_dir,
        StateKeyFile(
            backend=settings.backend,
            params=settings.backend_params(),
            current=key_id,
            keys=[wrapped_key(backend, key_id, key, create=True)],
        ),
    )
    cipher = StateCipher({key_id: key}, key_id, source=backend.reference())
    register(state_dir, cipher)
    return cipher


def open_state_encryption(state_dir: Path, settings: EncryptionConfig) -> StateCipher | None:
    """At agent start, before any state file is read or written.

    An encrypted state dir (a key file) is opened whatever the config says, and refused when
    the config names another key (that needs a rekey). A state dir without a key file:
    plaintext when encryption is off; with it on, a new key file for a state dir that holds
    no sensitive file yet, and a refusal for one that does (encrypt it with `state rekey`).
    """
    state_dir = Path(state_dir)
    kf = read_key_file(state_dir)
    if kf is not None:
        if settings.enabled:
            wanted = build_backend(settings.backend, settings.backend_params())
            have = build_backend(kf.backend, kf.params)
            if (settings.backend, wanted.identity()) != (kf.backend, have.identity()):
                raise ConfigError(
                    f"the state dir {state_dir} is encrypted under {have.reference()} but "
                    f"[state.encryption] names {wanted.reference()}",
                    remedy="run `defiagent state rekey -c agent.toml` to move it to the "
                    "configured key, or set the config back",
                )
        register(state_dir, None)  # a fresh read of the key file
        cipher = unlock(state_dir)
        register(state_dir, cipher)
        return cipher
    if not settings.enabled:
        return None
    found = present_files(state_dir)
    sealed = [name for name in found if _holds_sealed(state_dir / name)]
    if sealed:
        raise Refused(
            f"the state dir {state_dir} holds encrypted files ({', '.join(sealed)}) but no "
            f"{FILENAME}, so they cannot be read and no new key is made over them",
            remedy=f"restore {FILENAME} from a backup (it holds the wrapped data keys)",
        )
    if found:
        raise Refused(
            f"[state.encryption] is on but the state dir {state_dir} already holds "
            f"unencrypted files ({', '.join(found)}), and nothing is encrypted or dropped "
            "behind your back",
            remedy="encrypt them with `defiagent state rekey -c agent.toml` (the agent stopped)",
        )
    return create_key_file(state_dir, settings)
