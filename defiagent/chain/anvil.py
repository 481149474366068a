"""Start and stop anvil: plain, or forking another RPC; never left behind as an orphan.

A fork URL that carries anything beyond scheme://host:port (an API key in the path, query
or userinfo) is never given to anvil: anvil forks an `RpcForwarder` on 127.0.0.1 instead,
which adds the credential in this process (see defiagent/chain/forwarder.py). So the key is
in neither anvil's command line (readable by every local user) nor its log file, and
anvil's environment leaves out DEFIAGENT_* variables and any variable holding the key.
Messages name the fork URL by scheme and host only.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from pathlib import Path
from typing import IO

from defiagent.chain.forwarder import (
    RpcForwarder,
    carries_credential,
    credential_fragments,
    redact_url,
)
from defiagent.chain.process import die_with_parent_preexec
from defiagent.chain.rpc import JsonRpcClient, RpcError
from defiagent.errors import InfraError
from defiagent.toolchain import anvil_path

_RUNNING: weakref.WeakSet[Anvil] = weakref.WeakSet()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Anvil:
    """One anvil process on 127.0.0.1. Use as a context manager, or start()/stop()."""

    def __init__(
        self,
        *,
        fork_url: str | None = None,
        fork_block_number: int | None = None,
        chain_id: int | None = None,
        port: int | None = None,
        log_dir: Path | None = None,
        block_time: float | None = None,
        extra_args: tuple[str, ...] = (),
        startup_timeout: float = 30.0,
        forward: bool | None = None,
        detached: bool = False,
    ) -> None:
        """`forward`: fork through a loopback `RpcForwarder` (None: only when `fork_url`
        carries a path, query or userinfo, i.e. possibly a key). `detached`: anvil runs in
        its own session and outlives this process (`defiagent devnet up`); nothing here
        stops it at exit, its owner stops it by pid."""
        self.fork_url = fork_url
        self.forward = carries_credential(fork_url) if forward is None and fork_url else forward
        self._forwarder: RpcForwarder | None = None
        self.fork_block_number = fork_block_number
        self.chain_id = chain_id
        self.port = port
        self.block_time = block_time
        self.extra_args = extra_args
        self.startup_timeout = startup_timeout
        self._log_dir = Path(log_dir) if log_dir else None
        self.log_path: Path | None = None
        self._proc: subprocess.Popen | None = None
        self._log_file: IO[bytes] | None = None
        self.detached = detached

    @property
    def url(self) -> str:
        if self.port is None:
            raise InfraError("anvil has not been started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def fork_source_url(self) -> str | None:
        """The URL anvil itself forks from (for `anvil_reset`): the forwarder's when the
        fork goes through one, else `fork_url`."""
        if self._forwarder is not None:
            return self._forwarder.url
        return None if self.forward else self.fork_url

    def _argv(self) -> list[str]:
        argv = [str(anvil_path()), "--host", "127.0.0.1", "--port", str(self.port)]
        if self.fork_url:
            source = self.fork_source_url
            if source is None:
                raise InfraError("the fork forwarder is not running")
            argv += ["--fork-url", source]
            if self.fork_block_number is not None:
                argv += ["--fork-block-number", str(self.fork_block_number)]
        if self.chain_id is not None:
            argv += ["--chain-id", str(self.chain_id)]
        if self.block_time is not None:
            argv += ["--block-time", str(self.block_time)]
        return argv + list(self.extra_args)

    def start(self) -> Anvil:
        if self._proc is not None:
            return self
        last_error: InfraError | None = None
        # A free port can be taken between our probe and anvil's bind: retry a few times.
        for _ in range(3):
            if self.port is None or last_error is not None:
                self.port = free_port()
            try:
                self._spawn()
                self._wait_ready()
                if not self.detached:
                    _RUNNING.add(self)
                return self
            except InfraError as exc:
                last_error = exc
                self.stop()
                if "Address already in use" not in self.log_tail():
                    break
        assert last_error is not None
        raise last_error

    def _spawn(self) -> None:
        log_dir = self._log_dir or Path(tempfile.mkdtemp(prefix="defiagent-anvil-"))
        log_dir.mkdir(parents=True, exist_ok=True)
        # A file of its own per start: a stale "Listening on" line must never be read.
        fd, name = tempfile.mkstemp(prefix=f"anvil-{self.port}-", suffix=".log", dir=log_dir)
        self.log_path = Path(name)
        self._log_file = os.fdopen(fd, "ab")
        if self.fork_url and self.forward and self._forwarder is None:
            try:
                self._forwarder = RpcForwarder(self.fork_url).start()
            except ValueError as exc:  # ws://, or not a URL: no forwarder for it
                raise InfraError(f"anvil cannot fork through a forwarder: {exc}") from None
        self._proc = subprocess.Popen(
            self._argv(),
            env=self._child_env(),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=None if self.detached else die_with_parent_preexec(os.getpid()),
            start_new_session=self.detached,  # its own session: no terminal's SIGHUP reaches it
            close_fds=True,
        )

    def _child_env(self) -> dict[str, str]:
        """Our environment without what anvil has no use for and must not hold: the agent's
        own settings (DEFIAGENT_RPC_URL may carry the key) and any variable holding the
        fork URL's credential. /proc/PID/environ is readable by this user only, but a
        child that does not need a secret should not have it."""
        fragments = credential_fragments(self.fork_url, min_length=8) if self.fork_url else []
        return {
            name: value
            for name, value in os.environ.items()
            if not name.startswith("DEFIAGENT_") and not any(f in value for f in fragments)
        }

    def _wait_ready(self) -> None:
        client = JsonRpcClient(self.url, timeout=2.0)
        deadline = time.monotonic() + self.startup_timeout
        try:
            while time.monotonic() < deadline:
                if self._proc is None or self._proc.poll() is not None:
                    what = f"fork {redact_url(self.fork_url)}" if self.fork_url else "start"
                    raise InfraError(f"anvil could not {what}: {self._failure_reason()}")
                # Only our own process counts: another node already on the port would
                # answer the RPC too, so wait for anvil's own "Listening on" line first.
                if not self._listening():
                    time.sleep(0.02)
                    continue
                try:
                    client.call("eth_chainId")
                    return
                except RpcError:
                    time.sleep(0.05)
        finally:
            client.close()
        raise InfraError(f"anvil did not answer on {self.url} within {self.startup_timeout:.0f}s")

    def _listening(self) -> bool:
        if not self.log_path or not self.log_path.exists():
            return False
        return f"Listening on 127.0.0.1:{self.port}" in self.log_path.read_text(errors="replace")

    def _failure_reason(self) -> str:
        # anvil prints an error chain over several lines; keep it to one readable sentence.
        parts = [line.strip(" -") for line in self.log_tail(8).splitlines()]
        parts = [p for p in parts if p and p != "Context:"]
        return "; ".join(parts[-2:]) if parts else "it exited at once"

    def log_tail(self, lines: int = 5) -> str:
        if not self.log_path or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._forwarder is not None:
            self._forwarder.stop()
            self._forwarder = None
        _RUNNING.discard(self)

    def __enter__(self) -> Anvil:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@atexit.register
def _stop_all() -> None:
    for node in list(_RUNNING):
        node.stop()
