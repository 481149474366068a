"""The local-chain manager: starts, answers, forks, keeps its log, never leaves orphans."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from defiagent.chain.anvil import Anvil
from defiagent.chain.rpc import JsonRpcClient, RpcError
from defiagent.errors import InfraError


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); read its state.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait_dead(pid: int, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_start_answers_and_stop_kills(tmp_path):
    node = Anvil(log_dir=tmp_path).start()
    try:
        assert JsonRpcClient(node.url).call("eth_chainId") == "0x7a69"
        pid = node.pid
        assert node.log_path.exists()
    finally:
        node.stop()
    assert _wait_dead(pid)
    with pytest.raises(RpcError):
        JsonRpcClient(node.url, timeout=1).call("eth_chainId")


def test_fork_follows_upstream_state_at_a_block(tmp_path):
    with Anvil(log_dir=tmp_path) as upstream:
        rpc = JsonRpcClient(upstream.url)
        rpc.call("anvil_mine", "0x5")
        target = "0x00000000000000000000000000000000000000aa"
        rpc.call("anvil_setBalance", target, hex(123))
        rpc.call("anvil_mine", "0x1")
        assert int(rpc.call("eth_blockNumber"), 16) == 6
        with Anvil(fork_url=upstream.url, log_dir=tmp_path) as fork:
            f = JsonRpcClient(fork.url)
            assert int(f.call("eth_getBalance", target, "latest"), 16) == 123
            # Writes on the fork never reach upstream.
            f.call("anvil_setBalance", target, hex(7))
            assert int(rpc.call("eth_getBalance", target, "latest"), 16) == 123
        with Anvil(fork_url=upstream.url, fork_block_number=3, log_dir=tmp_path) as old:
            o = JsonRpcClient(old.url)
            assert int(o.call("eth_blockNumber"), 16) == 3
            assert int(o.call("eth_getBalance", target, "latest"), 16) == 0


def test_unreachable_fork_url_is_one_readable_infra_error(tmp_path):
    with pytest.raises(InfraError) as err:
        Anvil(fork_url="http://127.0.0.1:9", log_dir=tmp_path, startup_timeout=20).start()
    message = str(err.value)
    assert "could not fork http://127.0.0.1:9" in message
    assert "\n" not in message


def test_taken_port_is_retried_on_another(tmp_path):
    with Anvil(log_dir=tmp_path) as first:
        second = Anvil(port=first.port, log_dir=tmp_path).start()
        try:
            assert second.port != first.port
            assert JsonRpcClient(second.url).call("eth_chainId")
        finally:
            second.stop()


CHILD = textwrap.dedent(
    """
    import sys, time
    from defiagent.chain.anvil import Anvil
    node = Anvil(log_dir=sys.argv[1]).start()
    print(node.pid, flush=True)
    time.sleep(120)
    """
)


def test_anvil_dies_when_its_parent_is_sigkilled(tmp_path):
    parent = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    anvil_pid = int(parent.stdout.readline())
    assert _alive(anvil_pid)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    assert _wait_dead(anvil_pid), "anvil outlived its SIGKILLed parent"


GRANDCHILD = textwrap.dedent(
    """
    import subprocess, sys
    # Stands in for `make`: runs the real worker and waits; gets SIGKILLed by the test.
    child = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2]])
    child.wait()
    """
)
WATCHED_CHILD = textwrap.dedent(
    """
    import sys, time
    from defiagent.chain.anvil import Anvil
    from defiagent.chain.process import exit_when_orphaned
    exit_when_orphaned(poll_seconds=0.1)
    node = Anvil(log_dir=sys.argv[1]).start()
    with open(sys.argv[1] + "/pids", "w") as fh:
        import os
        fh.write(f"{os.getpid()} {node.pid}")
    time.sleep(120)
    """
)


def test_killing_the_grandparent_tears_down_the_tree(tmp_path):
    """SIGKILL `make` (here a stand-in): pytest notices and exits, anvil dies with it."""
    top = subprocess.Popen([sys.executable, "-c", GRANDCHILD, WATCHED_CHILD, str(tmp_path)])
    pids = tmp_path / "pids"
    deadline = time.monotonic() + 30
    while not (pids.exists() and pids.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    worker_pid, anvil_pid = map(int, pids.read_text().split())
    assert _alive(anvil_pid)
    top.send_signal(signal.SIGKILL)
    top.wait()
    assert _wait_dead(worker_pid), "the worker outlived its killed parent"
    assert _wait_dead(anvil_pid), "anvil outlived the killed process tree"
