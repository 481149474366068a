"""The pieces `defiagent demo --safe` adds, on the demo market without the minutes of vetting:
the Safe set up and synced by its two owners, and every call forged with the agent's key
mined and reverted by the guard, each with its reason. (The whole demo is run by hand and
by tests/agent/test_demo.py without --safe.)"""

from __future__ import annotations

import pytest

from defiagent.safe.demo import forged_attacks, setup_demo_safe
from defiagent.safe.runtime import wanted_config
from defiagent.safe.status import safe_status

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("safe-demo")]


def test_demo_safe_is_synced_and_every_forged_call_reverts(
    cw3, market, signer, safe_allowlist, tmp_path
):
    steps: list[str] = []
    dep, cfg = setup_demo_safe(cw3, market, signer, safe_allowlist, tmp_path, steps.append)
    assert steps
    status, _ = safe_status(
        cw3, dep.ref, wanted_config(safe_allowlist, cfg.multi_send), agent=signer.address
    )
    assert status.in_sync, status.problems
    forged = forged_attacks(cw3, market, signer, dep)
    assert len(forged) == 6
    for f in forged:
        assert not f.executed, f.attempt
        assert f.error is not None, f.reason
        assert f.reason.startswith("the guard refused"), f.reason
    errors = {f.error for f in forged}
    assert {"FunctionNotAllowed", "ArgumentRefused", "TargetNotAllowed"} <= errors
    assert "DelegatecallRefused" in errors


@pytest.mark.xdist_group("vetting")
def test_the_whole_demo_trades_from_the_safe_and_refuses_forgeries_on_chain(capsys):
    """`defiagent demo --safe` end to end: V2, V3 and vault trades each one transaction of
    the agent's key through the guard; every forged call, a V3 swap to a thief included
    (its recipient is a struct field), mined and reverted."""
    import json

    from defiagent.cli.app import main

    assert main(["demo", "--safe", "--ticks", "3", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    executed = [i for t in doc["ticks"] for i in t["intents"] if i["status"] == "executed"]
    assert {"mean-reversion", "mean-reversion-v3", "treasury"} <= {i["strategy"] for i in executed}
    assert all(len(i["tx_hashes"]) == 1 for i in executed)  # approve + call in one MultiSend
    forged = {f["attempt"]: f for f in doc["forged"]}
    v3 = forged["swap on Uniswap V3 with the proceeds sent to the thief"]
    assert not v3["executed"]
    assert "recipient must be the Safe" in v3["reason"]
    assert not any(f["executed"] for f in forged.values())
    assert doc["summary"]["public_sends"] == 0
