"""Start `defiagent signer serve` as its own process, on a real anvil chain, for the tests."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w
from eth_account import Account

from defiagent.chain.anvil import free_port
from defiagent.signing.keystore import write_keystore

PASSWORD_ENV = "DEFIAGENT_TEST_SIGNER_PASSWORD"
DEFIAGENT = str(Path(sys.executable).parent / "defiagent")


@dataclass
class RunningSigner:
    proc: subprocess.Popen[str]
    config: Path
    socket: Path
    state_dir: Path
    address: str
    metrics_port: int


def new_keystore(path: Path) -> tuple[Path, str]:
    password = secrets.token_urlsafe(16)
    write_keystore(path, bytes(Account.create().key), password, light=True)
    return path, password


def write_signer_config(
    folder: Path,
    *,
    rpc_url: str,
    chain_id: int,
    allowlist_dir: Path,
    signer_table: dict[str, Any],
    prices: dict[str, float],
    limits: dict[str, Any] | None = None,
    **extra: Any,
) -> tuple[Path, Path, Path]:
    """(config path, socket path, state dir)"""
    # The socket's folder directly under /tmp: short (a socket path has at most 107 bytes)
    # and reachable by other users once its mode allows it (pytest's folders are not).
    run_dir = Path(tempfile.mkdtemp(prefix="defiagent-signer-"))
    state = folder / "state"
    for d in (run_dir, state):
        d.mkdir(parents=True, exist_ok=True)
        d.chmod(0o700)
    data = {
        "chain_id": chain_id,
        "rpc_url": rpc_url,
        "allowlist_dir": str(allowlist_dir),
        "state_dir": str(state),
        "socket": str(run_dir / "signer.sock"),
        "request_timeout_seconds": 1.0,
        "signer": signer_table,
        "limits": limits or {},
        "assets": [{"asset": a, "decimals": 18, "price": p} for a, p in prices.items()],
        **extra,
    }
    path = folder / "signer.toml"
    path.write_text(tomli_w.dumps(data))
    return path, run_dir / "signer.sock", state


@contextlib.contextmanager
def serve(
    config: Path, socket: Path, state: Path, password: str | None, **env: str
) -> Iterator[RunningSigner]:
    environ = dict(os.environ) | env
    if password is not None:
        environ[PASSWORD_ENV] = password
    proc = subprocess.Popen(
        [DEFIAGENT, "signer", "serve", "-c", str(config), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environ,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line:
            proc.wait(10)
            raise RuntimeError(
                f"the signer did not start: {proc.stderr.read() if proc.stderr else ''}"
            )
        ready = json.loads(line)
        port = int(tomli_load(config).get("metrics_port") or 0)
        yield RunningSigner(proc, config, socket, state, ready["address"], port)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        with contextlib.suppress(OSError):
            socket.unlink(missing_ok=True)
            socket.parent.rmdir()


def tomli_load(path: Path) -> dict[str, Any]:
    import tomllib

    return tomllib.loads(path.read_text())


def wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def free_metrics_port() -> int:
    return free_port()
