"""A Safe 1.4.1 (real npm bytecode) owned by two operator keys (2 of 2), its AllowlistGuard
for the agent's key, synced from the allowlist, on the local Uniswap V2 market."""

from __future__ import annotations

import pytest
from eth_account import Account

from defiagent.agent.devnet import UNIT, fund
from defiagent.allowlist.models import ArgConstraint, ConstraintKind
from defiagent.safe import sync
from defiagent.safe.deploy import deploy_infra, deploy_safe
from defiagent.safe.runtime import wanted_config
from tests.agent.conftest import allowlist, chain, cw3, market, signer, start_agent  # noqa: F401

APPROVE_CAP = 10**6 * UNIT


@pytest.fixture(scope="module")
def safe_allowlist(allowlist):  # noqa: F811
    """The agent's allowlist with an approval cap on every token (an amount cap to test)."""
    entries = {}
    for address, e in allowlist.entries.items():
        functions = [
            f.model_copy(
                update={
                    "constraints": [
                        *f.constraints,
                        ArgConstraint(
                            arg=f.signature.split(",")[1].split()[1].rstrip(")"),
                            kind=ConstraintKind.MAX_AMOUNT,
                            value=str(APPROVE_CAP),
                        ),
                    ]
                }
            )
            if f.signature.startswith("approve(")
            else f
            for f in e.functions
        ]
        entries[address] = e.model_copy(update={"functions": functions})
    return allowlist.model_copy(update={"entries": entries})


@pytest.fixture(scope="module")
def owners():
    return [Account.create(), Account.create()]


@pytest.fixture(scope="module")
def deployment(cw3, market, signer, owners, safe_allowlist, tmp_path_factory):  # noqa: F811
    """Deployed, enabled and synced (both owners signed), funded with DUSD and ETH."""
    infra = deploy_infra(cw3, signer)
    dep = deploy_safe(
        cw3,
        signer,
        owners=[o.address for o in owners],
        threshold=2,
        agent=signer.address,
        infra=infra,
    )
    path = tmp_path_factory.mktemp("sync") / "sync-guard.json"
    want = wanted_config(safe_allowlist, infra.multi_send)
    assert sync.propose(cw3, dep.ref, want, path) is not None
    for owner in owners:
        sync.approve(cw3, dep.ref, path, owner, want)
    sync.execute(cw3, dep.ref, path, signer, want)
    fund(cw3, market, dep.safe, eth=1 * UNIT, dusd=20_000 * UNIT)
    return dep
