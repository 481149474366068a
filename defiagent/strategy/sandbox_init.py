"""First thing run inside a strategy's sandbox: wire up the egress proxy, then exec the strategy.

    python -m defiagent.strategy.sandbox_init [--egress-socket PATH] -- ARGV...

The sandbox has no network but loopback. With --egress-socket (the agent's EgressProxy socket,
bind-mounted in) this binds a TCP listener on 127.0.0.1, forks a forwarder that pipes every
connection to it into a new connection to that Unix socket, points HTTP_PROXY / HTTPS_PROXY /
ALL_PROXY (and their lowercase twins) at the listener, clears NO_PROXY, and execs ARGV, which
so keeps this process's pid, stdin and stdout (the strategy protocol runs over them). Without
--egress-socket it only execs ARGV.

The forwarder never touches stdin or stdout (both are pointed at /dev/null) and dies with the
strategy (PR_SET_PDEATHSIG, and a getppid poll where prctl is missing). It decides nothing:
every connection meets the allowlist in the agent. Stdlib only, small: it runs at every start.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time

PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
CHUNK = 64 * 1024
USAGE = "usage: python -m defiagent.strategy.sandbox_init [--egress-socket PATH] -- ARGV..."


def parse(args: list[str]) -> tuple[str | None, list[str]]:
    """(egress socket or None, argv to exec); ValueError on anything else."""
    egress: str | None = None
    i = 0
    while i < len(args) and args[i] != "--":
        if args[i] == "--egress-socket" and i + 1 < len(args):
            egress = args[i + 1]
            i += 2
        elif args[i].startswith("--egress-socket="):
            egress = args[i].partition("=")[2]
            i += 1
        else:
            raise ValueError(f"unexpected argument {args[i]!r}")
    argv = args[i + 1 :]
    if i >= len(args) or not argv:
        raise ValueError("no command after --")
    if egress is not None and not egress:
        raise ValueError("--egress-socket needs a path")
    return egress, argv


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    """One direction of a relay; at EOF the other side is told (half-close)."""
    try:
        while data := src.recv(CHUNK):
            dst.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


def _forward(client: socket.socket, egress: str) -> None:
    with client:
        try:
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(egress)
        except OSError as e:
            print(f"sandbox_init: egress proxy unreachable: {e}", file=sys.stderr, flush=True)
            return
        with upstream:
            back = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
            back.start()
            _pipe(client, upstream)
            back.join()


def _die_with_parent(parent: int) -> None:
    """SIGKILL this process when the parent (the strategy after exec) exits."""
    try:
        import ctypes  # only the forwarder pays for it

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        if libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl")
    except (OSError, AttributeError):

        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(0.5)
            os._exit(0)

        threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != parent:  # it died before prctl took hold
        os._exit(0)


def _forwarder(listener: socket.socket, egress: str, parent: int) -> None:
    """The child: never returns."""
    try:
        _die_with_parent(parent)
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)
        os.close(devnull)
        while True:
            client, _ = listener.accept()
            threading.Thread(target=_forward, args=(client, egress), daemon=True).start()
    except BaseException as e:
        with contextlib.suppress(BaseException):
            print(f"sandbox_init: forwarder stopped: {e!r}", file=sys.stderr, flush=True)
    finally:
        os._exit(1)


def main(args: list[str] | None = None) -> None:
    try:
        egress, argv = parse(sys.argv[1:] if args is None else args)
    except ValueError as e:
        print(f"sandbox_init: {e}\n{USAGE}", file=sys.stderr)
        raise SystemExit(2) from None
    if egress is not None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)  # connections queue here until the forwarder accepts them
        port = listener.getsockname()[1]
        sys.stdout.flush()
        sys.stderr.flush()
        parent = os.getpid()
        if os.fork() == 0:
            _forwarder(listener, egress, parent)
        listener.close()
        proxy = f"http://127.0.0.1:{port}"
        for name in PROXY_VARS:
            os.environ[name] = os.environ[name.lower()] = proxy
        os.environ.pop("NO_PROXY", None)
        os.environ.pop("no_proxy", None)
    try:
        os.execvp(argv[0], argv)  # noqa: S606 (the strategy replaces this process)
    except OSError as e:
        print(f"sandbox_init: cannot run {argv[0]!r}: {e}", file=sys.stderr)
        raise SystemExit(127) from None


if __name__ == "__main__":
    main()
