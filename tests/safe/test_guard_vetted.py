"""The guard contract passes the project's own vetting (solcjs + the Slither gate)."""

from __future__ import annotations

import json

import pytest

from defiagent.cli.app import main
from defiagent.safe.artifacts import GUARD_SOURCE

pytestmark = pytest.mark.slow


def test_the_guard_passes_defiagent_vet(capsys):
    assert main(["vet", str(GUARD_SOURCE), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is True
