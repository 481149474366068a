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
