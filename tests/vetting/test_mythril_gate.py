"""Mythril, the second analyzer, from .venv-mythril on the runtime bytecode: refuses on
high-severity issues only, its results in the report and the cache; a missing Mythril is
noted when optional and exit 3 only when the policy requires it."""

from __future__ import annotations

import json
import time

import pytest

from defiagent.allowlist.policy import MythrilPolicy, Policy
from defiagent.cli.app import main
from defiagent.errors import ToolMissing
from defiagent.vetting.mythril import myth_path
from defiagent.vetting.vet import vet_sources

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("mythril")]

KILLABLE = (
    "// SPDX-License-Identifier: MIT\npragma solidity ^0.8.0;\n"
    "contract Killable { function kill() external { selfdestruct(payable(msg.sender)); } }\n"
)
CLEAN = (
    "// SPDX-License-Identifier: MIT\npragma solidity ^0.8.0;\n"
    "contract Stored { uint256 public x; function set(uint256 v) external { x = v; } }\n"
)


def policy(use: str) -> Policy:
    return Policy(mythril=MythrilPolicy(use=use, execution_timeout=30))


@pytest.fixture
def sources(tmp_path):
    (tmp_path / "Killable.sol").write_text(KILLABLE)
    (tmp_path / "Stored.sol").write_text(CLEAN)
    return tmp_path


def test_mythril_is_installed_by_the_bootstrap():
    assert myth_path() is not None, "run scripts/bootstrap: it installs .venv-mythril"


def test_a_high_severity_issue_refuses_and_is_cached(sources):
    report = vet_sources(sources / "Killable.sol", policy=policy("required")).report
    assert report.verdict == "refused"
    mythril = [o for o in report.failures() if o.check == "mythril"]
    assert len(mythril) == 1
    assert "SWC-106" in mythril[0].reason
    assert report.mythril is not None
    assert [i.swc_id for i in report.mythril[0].failing] == ["106"]
    assert not report.mythril[0].cached

    started = time.perf_counter()
    again = vet_sources(sources / "Killable.sol", policy=policy("required")).report
    assert again.mythril is not None
    assert again.mythril[0].cached
    assert again.mythril[0].issues == report.mythril[0].issues
    assert time.perf_counter() - started < 5  # no second symbolic execution


def test_clean_code_passes_mythril(sources):
    report = vet_sources(sources / "Stored.sol", policy=policy("required")).report
    assert report.verdict == "accepted", report.outcomes
    assert report.mythril is not None
    assert report.mythril[0].failing == []
    assert any(o.check == "mythril" and o.status == "pass" for o in report.outcomes)


def test_off_runs_nothing(sources):
    report = vet_sources(sources / "Killable.sol", policy=policy("off")).report
    assert report.mythril is None
    assert not any(o.check == "mythril" for o in report.outcomes)


def test_missing_mythril_is_noted_when_optional_and_exit_3_when_required(
    sources, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("DEFIAGENT_MYTH", str(tmp_path / "no-such-myth"))
    report = vet_sources(sources / "Stored.sol", policy=policy("optional")).report
    assert report.verdict == "accepted"  # skipped, and said so
    notes = [o for o in report.outcomes if o.check == "mythril"]
    assert [o.status for o in notes] == ["warn"]
    assert "not installed" in notes[0].reason

    with pytest.raises(ToolMissing, match="Mythril is not installed"):
        vet_sources(sources / "Stored.sol", policy=policy("required"))

    root = tmp_path / "allowlist"
    root.mkdir()
    (root / "policy.toml").write_text('[mythril]\nuse = "required"\n')
    code = main(["vet", str(sources / "Stored.sol"), "--allowlist", str(root), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 3
    assert out["error"]["kind"] == "infrastructure"
    assert "Mythril" in out["error"]["message"]
