"""The strategy host and its sandbox, attacked from inside: each escape's effect is checked
from outside (the file unread, the port unreachable, the kill switch unchanged, the agent
alive), and every way a child can misbehave ends in a failed tick, never in an exception."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from defiagent.errors import ConfigError, InfraError
from defiagent.strategy import sandbox
from defiagent.strategy.config import StrategyConfig
from defiagent.strategy.host import StrategyHost
from defiagent.strategy.protocol import Tick

A = "0x" + "11" * 20
B = "0x" + "22" * 20
CANARY = "canary-4f1c9e-do-not-leak"
MARKET = {"chain_id": 1, "block_number": 1, "block_timestamp": 1, "tokens": {}, "pools": []}
PORTFOLIO = {"owner": A, "block_number": 1, "eth_balance": 0, "balances": {A: 5}}

# An SDK strategy whose behaviour the test picks through params; it reports what it saw.
PROBE = textwrap.dedent(
    """
    import os, socket, sys, time
    from defiagent.strategy.sdk import Strategy, StrategyParams, run

    class Params(StrategyParams):
        action: str = "idle"
        path: str = ""
        port: int = 0
        pid: int = 0

    class Probe(Strategy):
        Params = Params

        def propose(self, market, portfolio):
            a = self.p.action
            if a == "read":
                try:
                    self.note("read:" + open(self.p.path).read())
                except OSError as exc:
                    self.note("read-failed:" + type(exc).__name__)
            elif a == "write":
                try:
                    with open(self.p.path, "w") as fh:
                        fh.write('{"on": false}')
                    self.note("write:ok")
                except OSError as exc:
                    self.note("write-failed:" + type(exc).__name__)
            elif a == "connect":
                try:
                    socket.create_connection(("127.0.0.1", self.p.port), timeout=0.5).close()
                    self.note("connect:ok")
                except OSError as exc:
                    self.note("connect-failed:" + type(exc).__name__)
            elif a == "kill":
                for pid in (self.p.pid, os.getppid()):
                    try:
                        os.kill(pid, 9)
                        self.note(f"kill:{pid}:ok")
                    except OSError as exc:
                        self.note(f"kill:{pid}:" + type(exc).__name__)
            elif a == "env":
                self.note("env:" + ",".join(sorted(os.environ)))
                self.note("uid:" + str(os.getuid()))
            elif a == "memory":
                try:
                    hoard = bytearray(3 * 1024 * 1024 * 1024)
                    self.note("memory:ok" + str(len(hoard)))
                except MemoryError:
                    self.note("memory-failed")
            elif a == "loop":
                while True:
                    pass
            elif a == "crash":
                os._exit(7)
            elif a == "huge":
                self.note("x")
                return [{"kind": "wrap", "amount": 1, "reason": "y" * 400}] * 4000
            elif a == "name":
                self.name = "someone-else"
            elif a == "raise":
                raise RuntimeError("model said no")
            elif a == "print":
                print("stray output on stdout must not break the protocol")
            return [{"kind": "wrap", "amount": 1}]

    if __name__ == "__main__":
        run(Probe)
    """
)


@pytest.fixture
def probe_file(tmp_path) -> Path:
    code = tmp_path / "strategies" / "probe.py"
    code.parent.mkdir()
    code.write_text(PROBE)
    return code


def host_for(code: Path, action: str = "idle", *, hidden=(), limits=None, **params) -> StrategyHost:
    sc = StrategyConfig(
        name="probe",
        path=code,
        params={"action": action, **params},
        limits=limits or {"tick_timeout_seconds": 3, "memory_mb": 512},
    )
    return StrategyHost(sc, hidden=list(hidden))


def ask(host: StrategyHost, n: int = 1):
    return host.propose(Tick(tick=n, market=MARKET, portfolio=PORTFOLIO))


@pytest.fixture
def run_host():
    hosts: list[StrategyHost] = []

    def start(*args, **kw) -> StrategyHost:
        h = host_for(*args, **kw)
        hosts.append(h)
        h.start()
        return h

    yield start
    for h in hosts:
        h.close()


def test_an_honest_answer_comes_back(run_host, probe_file):
    proposal = ask(run_host(probe_file))
    assert proposal.ok
    assert proposal.intents == [{"kind": "wrap", "amount": 1}]


@pytest.mark.parametrize("where", ["state", "keystore", "home-like"])
def test_secret_files_are_not_readable(run_host, probe_file, tmp_path, where):
    secret = tmp_path / where / "secret.json"
    secret.parent.mkdir()
    secret.write_text(CANARY)
    proposal = ask(run_host(probe_file, "read", path=str(secret)))
    assert proposal.ok
    assert proposal.notes == ["read-failed:FileNotFoundError"]
    assert CANARY not in json.dumps(proposal.notes)


def test_a_secret_inside_its_own_folder_is_masked(run_host, tmp_path):
    """An operator who points `path` at a folder that also holds the state dir: the
    state dir named as hidden is masked inside the sandbox."""
    folder = tmp_path / "strategy"
    folder.mkdir()
    (folder / "__main__.py").write_text(PROBE)
    state = folder / "state"
    state.mkdir()
    (state / "kill-switch.json").write_text(CANARY)
    host = run_host(folder, "read", path=str(state / "kill-switch.json"), hidden=[state])
    assert ask(host).notes == ["read-failed:FileNotFoundError"]


def test_the_kill_switch_file_cannot_be_written(run_host, probe_file, tmp_path):
    switch = tmp_path / "state" / "kill-switch.json"
    switch.parent.mkdir()
    switch.write_text('{"on": true}')
    proposal = ask(run_host(probe_file, "write", path=str(switch)))
    assert proposal.notes[0].startswith("write-failed:")
    assert switch.read_text() == '{"on": true}'
    # nor its own code (read-only)
    proposal = ask(run_host(probe_file, "write", path=str(probe_file)), 1)
    assert proposal.notes[0].startswith("write-failed:")
    assert probe_file.read_text() == PROBE


def test_no_network_without_listed_endpoints(run_host, probe_file):
    hits = []
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(0.1)
        port = server.getsockname()[1]
        # The same probe outside the sandbox reaches it: the port is really open.
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        server.accept()[0].close()
        proposal = ask(run_host(probe_file, "connect", port=port))
        with contextlib.suppress(TimeoutError):
            hits.append(server.accept())
    assert proposal.notes[0].startswith("connect-failed:")
    assert hits == []


def test_it_cannot_signal_the_agent(run_host, probe_file):
    seen = []
    previous = signal.signal(signal.SIGTERM, lambda *a: seen.append("term"))
    try:
        host = run_host(probe_file, "kill", pid=os.getpid())
        proposal = ask(host)
    finally:
        signal.signal(signal.SIGTERM, previous)
    # The agent's PID does not exist in its namespace; its parent there is the namespace's
    # own init (pid 1), which ignores the signal: the child even answers the next tick.
    assert proposal.notes == [f"kill:{os.getpid()}:ProcessLookupError", "kill:1:ok"]
    assert ask(host, 2).ok
    assert seen == []  # and this process is evidently alive


def test_no_inherited_environment_and_its_own_user(run_host, probe_file, monkeypatch):
    monkeypatch.setenv("DEFIAGENT_KEYSTORE_PASSWORD", CANARY)
    proposal = ask(run_host(probe_file, "env"))
    names = proposal.notes[0].removeprefix("env:").split(",")
    assert "DEFIAGENT_KEYSTORE_PASSWORD" not in names
    assert set(names) <= {
        "PATH",
        "HOME",
        "TMPDIR",
        "LANG",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONUNBUFFERED",
        "PWD",
    }
    assert proposal.notes[1] == "uid:65534"


def test_memory_is_capped(run_host, probe_file):
    proposal = ask(run_host(probe_file, "memory"))
    assert proposal.notes == ["memory-failed"]


def test_an_endless_loop_times_out_and_the_next_tick_gets_a_fresh_child(run_host, probe_file):
    host = run_host(probe_file, "loop", limits={"tick_timeout_seconds": 0.5})
    first_pid = host.pid
    started = time.monotonic()
    proposal = ask(host)
    assert time.monotonic() - started < 10  # bounded by the tick timeout, not the 60 s it asks for
    assert (proposal.ok, proposal.failure) == (False, "timeout")
    assert "longer than 0.5 s" in proposal.error
    assert host.pid is None  # killed
    proposal = ask(host, 2)  # started again (and loops again)
    assert proposal.failure == "timeout"
    assert host.starts == 2
    assert first_pid is not None


@pytest.mark.parametrize(
    ("action", "failure", "words"),
    [
        ("crash", "crash", "exited with status 7"),
        ("huge", "oversize", "larger than"),
        ("raise", "strategy-error", "model said no"),
    ],
)
def test_misbehaviour_is_a_failed_tick(run_host, probe_file, action, failure, words):
    host = run_host(probe_file, action, limits={"max_answer_bytes": 100_000})
    proposal = ask(host)
    assert (proposal.ok, proposal.failure) == (False, failure)
    assert words in proposal.error


def test_stray_prints_do_not_break_the_protocol(run_host, probe_file):
    host = run_host(probe_file, "print")
    assert ask(host).ok
    assert "stray output" in host.stderr_tail()


def test_a_name_it_gives_itself_changes_nothing(run_host, probe_file):
    host = run_host(probe_file, "name")
    ask(host)
    assert host.name == "probe"


def write_raw(tmp_path: Path, body: str) -> Path:
    """A strategy that speaks the protocol by hand (no SDK), as another language would."""
    code = tmp_path / "raw" / "raw.py"
    code.parent.mkdir(exist_ok=True)
    code.write_text(
        "import json, sys\n"
        "hello = json.loads(sys.stdin.readline())\n"
        'print(json.dumps({"type": "ready", "protocol": 1}), flush=True)\n'
        "for line in sys.stdin:\n"
        "    msg = json.loads(line)\n" + textwrap.indent(textwrap.dedent(body), "    ")
    )
    return code


@pytest.mark.parametrize(
    ("body", "failure"),
    [
        ('print("not json", flush=True)', "garbage"),
        ('print(json.dumps({"type": "intents", "tick": msg["tick"] + 1}), flush=True)', "garbage"),
        (
            'print(json.dumps({"type": "intents", "tick": msg["tick"], "intents": [],'
            ' "strategy": "other"}), flush=True)',
            "garbage",
        ),
        ('sys.stdout.write("x" * 5000); sys.stdout.flush()', "oversize"),
        ("pass", "timeout"),
    ],
    ids=["not-json", "wrong-tick", "extra-field", "no-newline-flood", "silent"],
)
def test_protocol_violations_are_failed_ticks(tmp_path, body, failure):
    sc = StrategyConfig(
        name="raw",
        path=write_raw(tmp_path, body),
        limits={"tick_timeout_seconds": 0.5, "max_answer_bytes": 1024},
    )
    host = StrategyHost(sc)
    try:
        host.start()
        proposal = ask(host)
        assert (proposal.ok, proposal.failure) == (False, failure), proposal
    finally:
        host.close()


def test_a_child_that_never_reads_cannot_block_the_agent(tmp_path):
    code = tmp_path / "deaf.py"
    code.write_text(
        "import json, sys, time\n"
        "sys.stdin.readline()\n"
        'print(json.dumps({"type": "ready", "protocol": 1}), flush=True)\n'
        "time.sleep(60)\n"
    )
    host = StrategyHost(
        StrategyConfig(name="deaf", path=code, limits={"tick_timeout_seconds": 0.5})
    )
    try:
        host.start()
        big = {
            **MARKET,
            "tokens": {
                f"0x{i:040x}": {"address": f"0x{i:040x}", "symbol": "T", "decimals": 18}
                for i in range(3000)
            },
        }
        started = time.monotonic()
        proposal = host.propose(Tick(tick=1, market=big, portfolio=PORTFOLIO))
        assert (
            time.monotonic() - started < 10
        )  # bounded by the tick timeout, not the 60 s it asks for
        assert proposal.failure == "timeout"
    finally:
        host.close()


def test_bad_params_are_a_config_error(probe_file):
    sc = StrategyConfig(name="probe", path=probe_file, params={"action": "idle", "nope": 1})
    host = StrategyHost(sc)
    with pytest.raises(ConfigError, match="nope"):
        host.start()
    host.close()


def test_no_sandbox_no_start(probe_file, monkeypatch):
    monkeypatch.setattr(sandbox, "bwrap_binary", lambda: None)
    host = host_for(probe_file)
    with pytest.raises(InfraError, match="sandbox"):
        host.start()
    host.close()


def test_a_sandbox_that_cannot_start_refuses(probe_file, monkeypatch, tmp_path):
    broken = tmp_path / "bwrap"
    broken.write_text(
        "#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n"
    )
    broken.chmod(0o755)
    monkeypatch.setattr(sandbox, "bwrap_binary", lambda: str(broken))
    host = host_for(probe_file)
    with pytest.raises(InfraError, match=r"did not start: .*Permission denied"):
        host.start()
    host.close()


def test_sandbox_none_runs_without_namespaces_but_with_an_empty_environment(
    probe_file, tmp_path, monkeypatch
):
    monkeypatch.setenv("DEFIAGENT_KEYSTORE_PASSWORD", CANARY)
    secret = tmp_path / "readable.txt"
    secret.write_text("visible")
    sc = StrategyConfig(name="dev", path=probe_file, sandbox="none", params={"action": "env"})
    host = StrategyHost(sc)
    try:
        host.start()
        notes = ask(host).notes
        assert "DEFIAGENT_KEYSTORE_PASSWORD" not in notes[0]
        assert notes[1] == f"uid:{os.getuid()}"  # no user namespace: development only
    finally:
        host.close()


def test_the_child_dies_with_the_host(probe_file):
    host = host_for(probe_file)
    host.start()
    pid = host.pid
    host.close()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the strategy child outlived its host")


def test_planted_bytecode_in_its_folder_is_not_run(tmp_path):
    """A .pyc in __pycache__ is outside the pin; the sandbox masks those folders."""
    folder = tmp_path / "pkg"
    folder.mkdir()
    (folder / "helper.py").write_text("VALUE = 'source'\n")
    (folder / "__main__.py").write_text(
        PROBE.replace(
            'return [{"kind": "wrap", "amount": 1}]',
            "import helper; self.note(helper.VALUE); return []",
        )
    )
    import py_compile

    evil = tmp_path / "evil.py"
    evil.write_text("VALUE = 'planted'\n")
    cache = folder / "__pycache__"
    cache.mkdir()
    tag = sys.implementation.cache_tag
    py_compile.compile(
        str(evil),
        cfile=str(cache / f"helper.{tag}.pyc"),
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    host = StrategyHost(StrategyConfig(name="pkg", path=folder, params={"action": "idle"}))
    try:
        host.start()
        assert ask(host).notes == ["source"]
    finally:
        host.close()


def test_propose_never_raises_even_when_the_pipe_breaks(run_host, probe_file):
    host = run_host(probe_file)
    os.kill(host.pid, signal.SIGKILL)
    threading.Event().wait(0.2)
    proposal = ask(host)
    assert (proposal.ok, proposal.failure) == (False, "crash")
    assert ask(host, 2).ok  # started again


def test_the_doctor_probe_runs_python_in_the_sandbox_or_says_why(monkeypatch, tmp_path):
    assert sandbox.probe()  # bwrap's version, after a real run
    broken = tmp_path / "bwrap"
    broken.write_text(
        "#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n"
    )
    broken.chmod(0o755)
    monkeypatch.setattr(sandbox, "bwrap_binary", lambda: str(broken))
    with pytest.raises(InfraError, match="No permissions to create new namespace"):
        sandbox.probe()
