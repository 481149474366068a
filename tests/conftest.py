"""Shared fixtures: real anvil chains and the real Uniswap V2 stack deployed on them."""

from __future__ import annotations

import os

import pytest
from web3 import Web3

from defiagent.chain.anvil import Anvil
from defiagent.chain.process import exit_when_orphaned
from defiagent.devchain.deploy import UniswapV2Deployment, create_pool, deploy_uniswap_v2

# If `make test` (our parent) is killed, even by SIGKILL, end this run too; every anvil we
# started dies with us through its parent-death signal. Runs in xdist workers as well.
exit_when_orphaned()


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    # Each test session gets its own cache dir (compiled artifacts, Slither results), so
    # tests never depend on a developer's warm cache... except the one shared by this run.
    if "DEFIAGENT_CACHE_DIR" not in os.environ:
        os.environ["DEFIAGENT_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    return


@pytest.fixture(autouse=True, scope="session")
def _isolated_config_home(tmp_path_factory):
    # The audit log's head keys live outside the state dir, in the user's config dir: keep
    # this run's keys (subprocesses included) out of the developer's home.
    os.environ["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("config-home"))


@pytest.fixture
def anvil(tmp_path) -> Anvil:
    """A fresh, empty local chain for one test."""
    with Anvil(log_dir=tmp_path / "anvil") as node:
        yield node


@pytest.fixture
def w3(anvil) -> Web3:
    return Web3(Web3.HTTPProvider(anvil.url))


@pytest.fixture
def uniswap(w3) -> UniswapV2Deployment:
    """Real Uniswap V2 factory, router, WETH9 and two OZ tokens, with a token_a/token_b pool."""
    deployment = deploy_uniswap_v2(w3)
    return create_pool(w3, deployment, 10**24, 2 * 10**24)


@pytest.fixture
def openbao():
    """A fresh OpenBao dev server (Vault API: KV v2 at `secret/`, transit once enabled).

    `.url`, `.token` (random root token), `.client()` (hvac), `.kv_put()`, `.approle()`.
    Starts in well under a second; see defiagent/testing/openbao.py.
    """
    from defiagent.testing.openbao import OpenBaoDev

    with OpenBaoDev() as server:
        yield server


@pytest.fixture(scope="session")
def openbao_session():
    """One OpenBao dev server shared by this worker's tests: write under your own paths."""
    from defiagent.testing.openbao import OpenBaoDev

    with OpenBaoDev() as server:
        yield server
