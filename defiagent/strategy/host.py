"""The strategy host: one sandboxed child per strategy, spoken to in JSON lines.

The host owns the child's life: it starts it (hello -> ready within the start timeout),
sends each tick's snapshot and reads one answer within the tick timeout and the answer
size cap. A timeout, a crash, garbage, an oversized answer or an answer for another tick
ends that child (it is started again on the next tick) and is reported as a failed
`Proposal`; the loop refuses the tick and, after repeated failures, pauses the strategy.
Nothing the child does can raise out of `propose`.

Every read and write has a deadline: a child that stops reading its stdin cannot block
the agent on a full pipe, and one that never ends its line cannot grow the agent's memory.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import json
import os
import selectors
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from defiagent.errors import ConfigError, DefiagentError, InfraError
from defiagent.strategy.config import StrategyConfig, StrategyLimits
from defiagent.strategy.protocol import (
    MAX_NOTE_CHARS,
    PROTOCOL_VERSION,
    Answer,
    Hello,
    Intents,
    Ready,
    StrategyError,
    Tick,
    to_wire,
)
from defiagent.strategy.sandbox import (
    EGRESS_SOCKET_NAME,
    SandboxSpec,
    readable_for,
    strategy_argv,
)

STDERR_KEEP = 4_096  # bytes of the child's stderr kept for diagnosis
_ANSWER = TypeAdapter(Answer)


@dataclass
class Proposal:
    """One tick's answer from a strategy, or why there is none."""

    intents: list[Any] = field(default_factory=list)  # raw JSON items, parsed by the loop
    notes: list[str] = field(default_factory=list)
    dropped: int = 0  # intents beyond the strategy's max_intents, never read
    error: str | None = None  # None: the strategy answered
    failure: str = ""  # "timeout", "crash", "garbage", "oversize", "strategy-error", "start"
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


class _Failure(Exception):
    def __init__(self, failure: str, message: str) -> None:
        super().__init__(message)
        self.failure = failure
        self.message = message


class StrategyHost:
    """A strategy behind its sandbox. `name` is the config's: the child cannot change it."""

    def __init__(
        self,
        sc: StrategyConfig,
        *,
        secrets: dict[str, str] | None = None,
        intent_kinds: list[str] | None = None,
        hidden: list[Path] | None = None,
        on_event: Any = None,  # callable(kind, data) for the audit log (egress decisions)
    ) -> None:
        self.sc = sc
        self.name = sc.name
        self.limits: StrategyLimits = sc.limits
        self.description = sc.name
        self._secrets = dict(secrets or {})
        self._intent_kinds = list(intent_kinds or [])
        self._hidden = list(hidden or [])
        self._on_event = on_event or (lambda kind, data: None)
        self._proc: subprocess.Popen[bytes] | None = None
        self._buffer = b""
        self._stderr: collections.deque[bytes] = collections.deque()
        self._stderr_size = 0
        self._stderr_lock = threading.Lock()
        self._egress: Any = None
        self._stderr_thread: threading.Thread | None = None
        self._egress_dir: Path | None = None
        self.starts = 0

    # --- life ---------------------------------------------------------------------------

    def spec(self) -> SandboxSpec:
        argv = strategy_argv(self.sc)
        return SandboxSpec(
            argv=argv,
            readable=readable_for(self.sc, argv),
            hidden=self._hidden,
            limits=self.limits,
            egress_dir=self._egress_dir,
            sandbox=self.sc.sandbox,
        )

    def start(self) -> str:
        """Start the child and exchange hello/ready; the strategy's description.
        Raises DefiagentError with a sentence when it cannot start."""
        try:
            return self._start()
        except _Failure as exc:
            self._kill()
            message = f"strategy {self.name} did not start: {exc.message}"
            if exc.failure == "params":  # it refused its params: the config's to fix
                raise ConfigError(message) from None
            raise StrategyStartError(message) from None

    def _start(self) -> str:
        self._kill()
        if self.sc.network and self._egress is None:
            self._start_egress()
        self._proc = self.spec().spawn()
        self.starts += 1
        self._buffer = b""
        for fd in (self._proc.stdout, self._proc.stdin):
            assert fd is not None
            flags = fcntl.fcntl(fd.fileno(), fcntl.F_GETFL)
            fcntl.fcntl(fd.fileno(), fcntl.F_SETFL, flags | os.O_NONBLOCK)
        self._stderr_thread = threading.Thread(
            target=self._drain_stderr, args=(self._proc,), daemon=True
        )
        self._stderr_thread.start()
        deadline = time.monotonic() + self.limits.start_timeout_seconds
        hello = Hello(
            strategy=self.name,
            params=self.sc.params,
            intent_kinds=self._intent_kinds,
            secrets=self._secrets,
            limits={
                "tick_timeout_seconds": self.limits.tick_timeout_seconds,
                "max_intents": self.limits.max_intents,
                "max_answer_bytes": self.limits.max_answer_bytes,
            },
        )
        self._send(hello.model_dump(mode="json"), deadline)
        raw = self._read_line(deadline)
        try:
            message = json.loads(raw)
        except ValueError:
            raise _Failure("garbage", "its first answer is not JSON") from None
        if isinstance(message, dict) and message.get("type") == "error":
            error = StrategyError.model_validate(message)
            if error.message.startswith("params"):
                raise _Failure("params", f"it refused its params: {error.message}")
            raise _Failure("strategy-error", f"it answered an error: {error.message}")
        try:
            ready = Ready.model_validate(message)
        except ValidationError as exc:
            raise _Failure(
                "garbage", f"its first answer is not a ready message ({_first(exc)})"
            ) from None
        if ready.protocol != PROTOCOL_VERSION:
            raise _Failure(
                "garbage", f"it speaks protocol {ready.protocol}, the agent {PROTOCOL_VERSION}"
            )
        self.description = ready.description or self.name
        return self.description

    def _start_egress(self) -> None:
        from defiagent.strategy.egress import EgressProxy

        # mkdtemp makes it 0700: the sandbox's user maps to the agent's own uid outside.
        self._egress_dir = Path(tempfile.mkdtemp(prefix="defiagent-egress-"))
        self._egress = EgressProxy(
            list(self.sc.network),
            self._egress_dir / EGRESS_SOCKET_NAME,
            on_decision=lambda d: self._on_event("strategy-egress", {"strategy": self.name, **d}),
        )
        self._egress.start()

    def close(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(Exception):
                self._send({"type": "stop"}, time.monotonic() + 0.2)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.5)
        self._kill()
        if self._egress is not None:
            self._egress.close()
            self._egress = None
        if self._egress_dir is not None:
            with contextlib.suppress(OSError):
                for p in self._egress_dir.iterdir():
                    p.unlink()
                self._egress_dir.rmdir()
            self._egress_dir = None

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, 9)
            with contextlib.suppress(Exception):
                proc.kill()
        with contextlib.suppress(Exception):
            proc.wait(timeout=2)
        for stream in (proc.stdin, proc.stdout):
            with contextlib.suppress(Exception):
                if stream is not None:
                    stream.close()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def stderr_tail(self) -> str:
        with self._stderr_lock:
            return b"".join(self._stderr).decode("utf-8", "replace")[-STDERR_KEEP:]

    def _drain_stderr(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        fd = proc.stderr.fileno()
        while True:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            with self._stderr_lock:
                self._stderr.append(chunk)
                self._stderr_size += len(chunk)
                while self._stderr_size > STDERR_KEEP and len(self._stderr) > 1:
                    self._stderr_size -= len(self._stderr.popleft())
        with contextlib.suppress(Exception):
            proc.stderr.close()

    # --- one tick -----------------------------------------------------------------------

    def propose(self, tick: Tick) -> Proposal:
        started = time.monotonic()
        try:
            proposal = self._propose(tick)
        except _Failure as exc:
            self._kill()  # whatever it was doing, it starts afresh next tick
            proposal = Proposal(error=exc.message, failure=exc.failure)
        except DefiagentError as exc:
            self._kill()
            proposal = Proposal(error=exc.message, failure="start")
        except Exception as exc:  # never let the child's behaviour raise into the agent
            self._kill()
            proposal = Proposal(error=f"{type(exc).__name__}: {exc}", failure="crash")
        proposal.seconds = time.monotonic() - started
        return proposal

    def _propose(self, tick: Tick) -> Proposal:
        if self._proc is None or self._proc.poll() is not None:
            if self._proc is not None:
                raise _Failure("crash", self._exit_reason(self._proc))
            self._start()
        deadline = time.monotonic() + self.limits.tick_timeout_seconds
        self._buffer = b""  # anything it sent unasked is discarded, never read as an answer
        self._discard_pending()
        self._send(tick.model_dump(mode="json"), deadline)
        raw = self._read_line(deadline)
        try:
            message = json.loads(raw)
        except ValueError:
            raise _Failure("garbage", "it answered something that is not JSON") from None
        if isinstance(message, dict) and isinstance(message.get("intents"), list):
            items = message["intents"]
            cap = self.limits.max_intents
            dropped = max(0, len(items) - cap)
            message = {**message, "intents": items[:cap]}
        else:
            dropped = 0
        if isinstance(message, dict) and isinstance(message.get("notes"), list):
            message["notes"] = [str(n)[:MAX_NOTE_CHARS] for n in message["notes"][:20]]
        try:
            answer = _ANSWER.validate_python(message)
        except ValidationError as exc:
            raise _Failure(
                "garbage", f"its answer is not a protocol message ({_first(exc)})"
            ) from None
        if isinstance(answer, StrategyError):
            return Proposal(
                error=f"the strategy reported an error: {answer.message}",
                failure="strategy-error",
            )
        assert isinstance(answer, Intents)
        if answer.tick != tick.tick:
            raise _Failure("garbage", f"it answered tick {answer.tick} when asked for {tick.tick}")
        return Proposal(intents=list(answer.intents), notes=list(answer.notes), dropped=dropped)

    # --- I/O with deadlines -------------------------------------------------------------

    def _send(self, message: dict[str, Any], deadline: float) -> None:
        proc = self._proc
        assert proc is not None
        assert proc.stdin is not None
        data = json.dumps(to_wire(message), separators=(",", ":")).encode() + b"\n"
        fd = proc.stdin.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_WRITE)
            while data:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise _Failure("timeout", self._timeout_reason("to read its input"))
                try:
                    sent = os.write(fd, data)
                except BlockingIOError:
                    continue
                except OSError:
                    raise _Failure("crash", self._exit_reason(proc)) from None
                data = data[sent:]

    def _read_line(self, deadline: float) -> bytes:
        proc = self._proc
        assert proc is not None
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        cap = self.limits.max_answer_bytes
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                if len(self._buffer) > cap:
                    raise _Failure("oversize", f"its answer is larger than {cap} bytes")
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise _Failure("timeout", self._timeout_reason("to answer"))
                try:
                    chunk = os.read(fd, 65_536)
                except BlockingIOError:
                    continue
                if not chunk:
                    raise _Failure("crash", self._exit_reason(proc))
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        if len(line) > cap:
            raise _Failure("oversize", f"its answer is larger than {cap} bytes")
        return line

    def _discard_pending(self) -> None:
        proc = self._proc
        if proc is None or proc.stdout is None:
            return
        with contextlib.suppress(BlockingIOError, OSError):
            for _ in range(64):
                if not os.read(proc.stdout.fileno(), 65_536):
                    break

    def _timeout_reason(self, what: str) -> str:
        return f"it took longer than {self.limits.tick_timeout_seconds:g} s {what}"

    def _exit_reason(self, proc: subprocess.Popen[bytes]) -> str:
        try:
            code = proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            return "it closed its output"
        if self._stderr_thread is not None:  # its last words, before they are quoted
            self._stderr_thread.join(timeout=0.5)
        tail = self.stderr_tail().strip().splitlines()
        last = f": {tail[-1][:200]}" if tail else ""
        if code < 0:
            return f"it was killed by signal {-code}{last}"
        return f"it exited with status {code}{last}"


class StrategyStartError(InfraError):
    """A strategy child that did not start (sandbox, interpreter, protocol): exit 3."""


def _first(exc: ValidationError) -> str:
    e = exc.errors()[0]
    where = ".".join(str(x) for x in e["loc"])
    return f"{where}: {e['msg']}" if where else e["msg"]
