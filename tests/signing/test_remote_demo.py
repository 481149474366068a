"""`defiagent demo --signer remote`, end to end: the key in its own `signer serve` process,
the honest strategy's trades signed through it, the rogue's requests refused at the guard,
and transactions forged past the agent refused at the signer, each with its rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from defiagent.cli.app import main
from defiagent.monitoring.audit_log import verify_audit_log
from defiagent.signing.remote.server import AUDIT_FILE

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("vetting")]


def test_demo_with_the_signer_process(capsys):
    assert main(["demo", "--signer", "remote", "--ticks", "3", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    summary = doc["summary"]
    assert summary["executed"] >= 1  # signed by the signer process, mined
    assert summary["rogue_requests"] > 5
    assert summary["rogue_executed"] == 0
    assert summary["signer_forged"] == 6
    assert summary["signer_forged_signed"] == 0
    rules = {f["attempt"]: f["rule"] for f in doc["signer_forged"]}
    assert rules == {
        "transfer 1,000 DUSD to an outsider": "function-in-scope",
        "swap with the proceeds paid to an outsider": "recipient-is-self",
        "unlimited approve of DUSD to the router": "approval-bounded",
        "approve DTKN to an outsider": "spender-allowlisted",
        "send 1 ETH to an outsider": "contract-call-only",
        "approve DUSD after its code changed": "codehash-pinned",
    }
    # The agent's config names a socket, never a key or a password.
    assert doc["agent"]
    signer_log = Path(doc["workdir"]) / "signer" / "state" / AUDIT_FILE
    assert verify_audit_log(signer_log).ok
    kinds = [json.loads(line)["kind"] for line in signer_log.read_text().splitlines()]
    assert kinds.count("signer-refused") == 6
    assert kinds.count("signer-signed") >= 2  # an approve and its swap, at least
