"""An upstream chain with Uniswap V2, a funded throwaway agent per test, an executor factory."""

from __future__ import annotations

import pytest
from web3 import Web3

from defiagent.chain.anvil import Anvil
from defiagent.devchain.deploy import create_pool, deploy_uniswap_v2
from defiagent.execution.executor import Executor
from defiagent.execution.fees import FeePolicy
from defiagent.execution.journal import Journal
from defiagent.execution.models import ExpectedDelta, PlannedCall
from defiagent.simulation.models import SimulationOutcome
from tests.execution.signer import ThrowawaySigner
from tests.simulation.helpers import fund

ONE = 10**18


class Switch:
    """A kill switch the test flips; `after` turns it on after that many reads."""

    def __init__(self, on: bool = False, after: int | None = None) -> None:
        self.on, self.after, self.reads = on, after, 0

    def is_on(self) -> bool:
        self.reads += 1
        if self.after is not None and self.reads > self.after:
            return True
        return self.on


class ListAudit:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []

    def record(self, kind, payload) -> None:
        self.events.append((kind, payload))

    @property
    def kinds(self) -> list[str]:
        return [k for k, _ in self.events]


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    with Anvil(log_dir=tmp_path_factory.mktemp("chain")) as node:
        yield node


@pytest.fixture(scope="module")
def w3(chain) -> Web3:
    return Web3(Web3.HTTPProvider(chain.url))


@pytest.fixture(scope="module")
def dex(w3):
    return create_pool(w3, deploy_uniswap_v2(w3), 10**24, 2 * 10**24)


@pytest.fixture
def signer(w3, dex) -> ThrowawaySigner:
    s = ThrowawaySigner()
    fund(w3, dex, s.address, token_a=10**21)
    return s


@pytest.fixture
def audit() -> ListAudit:
    return ListAudit()


@pytest.fixture
def make_executor(chain, tmp_path, audit):
    """Build executors over one journal path; the previous one's journal is closed first."""
    opened: list[Journal] = []

    def make(signer, *, switch=None, fees=None, journal_path=None, **kw) -> Executor:
        for j in opened:
            j.close()
        journal = Journal(journal_path or tmp_path / "journal.sqlite")
        opened.append(journal)
        return Executor(
            chain.url,
            signer,
            journal,
            fees or FeePolicy(),
            kill_switch=switch or Switch(),
            audit=audit,
            receipt_timeout=5.0,
            **kw,
        )

    yield make
    for j in opened:
        j.close()


def wrap_call(dex, sender: str, amount: int = ONE, intent_id: str = "wrap-1") -> PlannedCall:
    return PlannedCall(
        intent_id=intent_id,
        intent_kind="wrap",
        target=dex.weth,
        data="0xd0e30db0",
        value=amount,
        sender=sender,
        expected=[
            ExpectedDelta(token=None, min_delta=-amount),
            ExpectedDelta(token=dex.weth, min_delta=amount),
        ],
        description=f"wrap {amount} wei",
    )


def ok_outcome(gas: int = 60_000) -> SimulationOutcome:
    return SimulationOutcome(success=True, gas_used=gas, block_number=0)
