"""Three verdicts: accepted, refused (findings), could not analyse (compile or analyser
failure, exit 1 with its own kind); exit 3 only for a missing tool. And compile once:
Slither analyses the compiler output vetting already produced."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from defiagent.allowlist.models import AllowlistEntry, Role
from defiagent.allowlist.policy import Policy
from defiagent.allowlist.report import render_review
from defiagent.cli.app import main
from defiagent.vetting.bundle import bundle_from_path
from defiagent.vetting.compiler import compile_bundle, compiler_output
from defiagent.vetting.context import Outcome
from defiagent.vetting.slither_runner import run_slither_bundle
from defiagent.vetting.verdict import CouldNotAnalyse
from defiagent.vetting.vet import VetReport, vet_sources

CLEAN = (
    "// SPDX-License-Identifier: MIT\npragma solidity ^0.8.0;\n"
    "contract Clean { uint256 public x; function set(uint256 v) external { x = v; } }\n"
)
KILLABLE = (
    "// SPDX-License-Identifier: MIT\npragma solidity ^0.8.0;\n"
    "contract Clean { uint256 public x; function set(uint256 v) external { x = v; }\n"
    "  function kill() external { selfdestruct(payable(msg.sender)); } }\n"
)
BROKEN = "pragma solidity ^0.8.0;\ncontract Broken {\n"


def run(capsys, *argv) -> tuple[int, dict]:
    code = main([*argv])
    return code, json.loads(capsys.readouterr().out)


def write(folder: Path, name: str, text: str, tag: str = "") -> Path:
    # `tag` makes the text unique: the session shares one cache, keyed by the sources.
    path = folder / name
    path.write_text(text + (f"// {tag}\n" if tag else ""))
    return path


def empty_root(tmp_path: Path) -> Path:
    root = tmp_path / "allowlist"
    root.mkdir()
    return root


@pytest.mark.slow
def test_each_verdict_from_the_cli(tmp_path, capsys):
    root = str(empty_root(tmp_path))
    code, out = run(
        capsys, "vet", str(write(tmp_path, "Clean.sol", CLEAN)), "--allowlist", root, "--json"
    )
    assert (code, out["verdict"], out["ok"]) == (0, "accepted", True)

    code, out = run(
        capsys, "vet", str(write(tmp_path, "K.sol", KILLABLE)), "--allowlist", root, "--json"
    )
    assert (code, out["verdict"]) == (1, "refused")
    assert any("suicidal" in o["reason"] for o in out["report"]["outcomes"])

    code, out = run(
        capsys, "vet", str(write(tmp_path, "Broken.sol", BROKEN)), "--allowlist", root, "--json"
    )
    assert (code, out["verdict"]) == (1, "could-not-analyse")  # exit 1, not 3 or 2
    failed = [o for o in out["report"]["outcomes"] if o["status"] == "fail"]
    assert failed
    assert all(o["unanalysed"] for o in failed)
    assert "ParserError" in failed[0]["reason"]

    assert main(["vet", str(tmp_path / "Broken.sol"), "--allowlist", root]) == 1
    assert "COULD NOT ANALYSE" in capsys.readouterr().out


@pytest.mark.slow
def test_an_analyser_failure_is_a_verdict_not_an_infrastructure_error(tmp_path, capsys):
    target = write(tmp_path, "Clean.sol", CLEAN, "analyser-failure")
    bundle = bundle_from_path(target)
    _, output = compiler_output(bundle)
    # A syntax tree Slither cannot make sense of: it crashes on it.
    data = json.loads(output.read_text())
    data["sources"]["Clean.sol"]["ast"] = {"nodeType": "SourceUnit", "nodes": [{"id": 1}]}
    output.write_text(json.dumps(data))
    try:
        report = vet_sources(target, policy=Policy()).report
    finally:
        output.unlink()  # leave the session cache sound for the other tests
        compile_bundle(bundle)
    assert report.verdict == "could-not-analyse"
    assert "Slither failed" in report.failures()[0].reason


def test_a_slither_that_overruns_its_time_gives_no_result(tmp_path):
    bundle = bundle_from_path(write(tmp_path, "Clean.sol", CLEAN, "overrun"))
    with pytest.raises(CouldNotAnalyse, match="did not finish"):
        run_slither_bundle(bundle, timeout=0.01)


def test_a_real_finding_beside_an_analysis_failure_is_refused():
    def report(*outcomes: Outcome) -> VetReport:
        return VetReport(target="t", kind="sources", outcomes=list(outcomes))

    unanalysed = Outcome(check="mythril", status="fail", reason="crashed", unanalysed=True)
    finding = Outcome(check="slither-gate", status="fail", reason="suicidal")
    passing = Outcome(check="slither-gate", status="pass", reason="none blocking")
    warning = Outcome(check="mythril", status="warn", reason="not installed: skipped")
    assert report(passing, warning).verdict == "accepted"
    assert report(passing, unanalysed).verdict == "could-not-analyse"
    assert report(finding, unanalysed).verdict == "refused"  # never hide a finding
    assert report(finding).verdict == "refused"
    assert report().verdict == "accepted"


def test_the_review_report_says_could_not_analyse():
    entry = AllowlistEntry(
        chain_id=31337,
        address="0x" + "11" * 20,
        name="Legacy",
        role=Role.TOKEN,
        codehash="0x" + "ab" * 32,
    )
    failed = Outcome(
        check="slither-gate",
        status="fail",
        reason="Slither could not analyse the sources: Slither failed on X.sol",
        unanalysed=True,
    )
    text = render_review(entry, VetReport(target="t", kind="address", outcomes=[failed]), [])
    assert "## Verdict: COULD NOT ANALYSE" in text
    assert "| slither-gate | COULD NOT ANALYSE |" in text


@pytest.mark.slow
def test_slither_analyses_the_output_vetting_compiled(tmp_path):
    # Compile once: swap the stored compiler output for that of other code under the same
    # unit name; Slither then reports what is in the stored output, so it read that output
    # and did not compile the sources a second time.
    clean_dir, bad_dir = tmp_path / "clean", tmp_path / "bad"
    clean_dir.mkdir()
    bad_dir.mkdir()
    bad = bundle_from_path(write(bad_dir, "Clean.sol", KILLABLE, "compile-once"))
    # Same length, so the stored source maps stay inside the file crytic-compile reads.
    pad = len(bad.sources["Clean.sol"]) - len(CLEAN) - len("// \n")
    clean = bundle_from_path(write(clean_dir, "Clean.sol", CLEAN, "x" * pad))
    _, clean_output = compiler_output(clean)
    _, bad_output = compiler_output(bad)
    assert not _checks(run_slither_bundle(clean)) & {"suicidal"}
    original = clean_output.read_text()
    clean_output.write_text(bad_output.read_text())
    try:
        assert "suicidal" in _checks(run_slither_bundle(clean))
    finally:
        clean_output.write_text(original)


def _checks(result: dict) -> set[str]:
    return {d["check"] for d in result["results"]["detectors"]}


@pytest.mark.slow
def test_an_address_whose_sources_do_not_compile_could_not_be_analysed(anvil, tmp_path):
    from web3 import Web3

    from defiagent.vetting.vet import vet_address
    from tests.allowlist.support import compiled, contract, deploy

    w3 = Web3(Web3.HTTPProvider(anvil.url))
    bank = deploy(w3, contract(compiled("vulnerable/Reentrancy.sol"), "ReentrantBank"))
    broken = write(tmp_path, "Reentrancy.sol", BROKEN, "address")
    policy = Policy.model_validate({"audits": {"min_audits": 0}})
    report = vet_address(anvil.url, bank.address, policy=policy, sources=broken).report
    assert report.verdict == "could-not-analyse", report.outcomes
    by_check = {o.check: o for o in report.failures()}
    assert by_check["source-match"].unanalysed
    assert "do not compile" in by_check["slither-gate"].reason
