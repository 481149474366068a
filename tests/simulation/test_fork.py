"""The persistent fork follows the upstream head, including reorgs, and fails closed."""

from __future__ import annotations

import pytest

from defiagent.chain.anvil import Anvil
from defiagent.chain.rpc import JsonRpcClient
from defiagent.errors import InfraError
from defiagent.simulation import ForkManager

pytestmark = pytest.mark.slow


@pytest.fixture
def chain(tmp_path):
    with Anvil(log_dir=tmp_path / "up") as node:
        yield node, JsonRpcClient(node.url)


def test_sync_resets_only_when_upstream_moved(chain, tmp_path):
    node, up = chain
    with ForkManager(node.url, log_dir=tmp_path / "fork") as fork:
        assert fork.sync() == 0
        assert fork.resets == 0
        up.call("evm_mine")
        up.call("evm_mine")
        assert fork.sync() == 2
        assert fork.sync() == 2
        assert fork.resets == 1
        assert int(fork.rpc.call("eth_blockNumber"), 16) == 2
        assert fork.chain_id == 31337


def test_sync_follows_a_reorg_at_the_same_height(chain, tmp_path):
    node, up = chain
    snapshot = up.call("evm_snapshot")
    up.call("evm_mine")
    with ForkManager(node.url, log_dir=tmp_path / "fork") as fork:
        old_hash = fork.block_hash
        up.call("evm_revert", snapshot)
        up.call("evm_mine", 10**10)  # same height, other timestamp: another block hash
        assert fork.sync() == 1
        assert fork.block_hash != old_hash
        assert fork.resets == 1


def test_pinned_fork_stays_at_its_block(chain, tmp_path):
    node, up = chain
    up.call("evm_mine")
    with ForkManager(node.url, block_number=0, log_dir=tmp_path / "fork") as fork:
        up.call("evm_mine")
        assert fork.sync() == 0
        assert int(fork.rpc.call("eth_blockNumber"), 16) == 0


def test_upstream_down_fails_closed(tmp_path):
    node = Anvil(log_dir=tmp_path / "up").start()
    fork = ForkManager(node.url, log_dir=tmp_path / "fork").start()
    try:
        node.stop()
        with pytest.raises(InfraError, match="upstream RPC did not answer"):
            fork.sync()
    finally:
        fork.stop()
        node.stop()


def test_fork_that_cannot_start_is_an_infra_error(tmp_path):
    with pytest.raises(InfraError):
        ForkManager("http://127.0.0.1:9", log_dir=tmp_path).start()
