"""Compilers on demand: the solcjs a pragma needs comes from npm into a cache, once.

Real npm registry, real solcjs. The suite uses two downloaded versions only (0.4.26 for
legacy code, 0.6.12 for a 0.6 pin the toolchain lacks); they are kept in the user's solc
cache (DEFIAGENT_SOLC_CACHE or ~/.cache/defiagent/solc), so later runs download nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from defiagent.allowlist.policy import Policy
from defiagent.errors import ConfigError
from defiagent.vetting import compilers
from defiagent.vetting.compilers import CompileError, choose_version, satisfying
from defiagent.vetting.vet import vet_sources

LEGACY = "0.4.26"

REENTRANT_04 = """pragma solidity ^0.4.11;
contract Bank {
    mapping(address => uint) public balances;
    function deposit() public payable { balances[msg.sender] += msg.value; }
    function withdraw() public {
        uint amount = balances[msg.sender];
        require(msg.sender.call.value(amount)());
        balances[msg.sender] = 0;
    }
}
"""

SAFE_04 = """pragma solidity ^0.4.11;
contract Counter {
    uint public count;
    function bump() public { count = count + 1; }
}
"""

RELEASES = ["0.4.9", "0.4.10", "0.4.11", "0.4.24", "0.4.26", "0.5.16", "0.5.17", "0.6.6"]


@pytest.mark.parametrize(
    ("pragmas", "expected"),
    [
        (["^0.4.11"], ["0.4.26", "0.4.24", "0.4.11"]),
        ([">=0.4.22 <0.6.0"], ["0.5.17", "0.5.16", "0.4.26", "0.4.24"]),
        ([">= 0.4.24"], ["0.6.6", "0.5.17", "0.5.16", "0.4.26", "0.4.24"]),  # solc allows a space
        (["=0.5.16"], ["0.5.16"]),
        (["0.4.10"], ["0.4.10"]),
        (["^0.4.11", "^0.5.0"], []),  # two files that cannot share a compiler
        ([], list(reversed(RELEASES))),
    ],
)
def test_pragma_ranges_pick_versions_newest_first(pragmas, expected):
    assert satisfying(RELEASES, pragmas) == expected


def test_a_pragma_that_is_no_range_is_refused_in_one_sentence():
    with pytest.raises(CompileError, match="not a version range"):
        satisfying(RELEASES, ["^0.4.x.y;drop"])


def test_toolchain_compilers_are_preferred_over_newer_published_ones():
    # ^0.5.0 is met by the toolchain's 0.5.16 though 0.5.17 is published: vetting stays offline.
    assert choose_version(["^0.5.0"]) == "0.5.16"
    compilers.ensure_compiler("0.6.12")  # cached by another test or now: it must not matter
    assert choose_version(["^0.6.0"]) == "0.6.6"


def test_legacy_pragma_picks_the_newest_published_04_release():
    assert choose_version(["^0.4.11"]) == LEGACY


def test_compilers_before_standard_json_are_refused_with_a_clear_verdict():
    with pytest.raises(CompileError, match=r"0\.4\.10, older than 0\.4\.11.*not supported"):
        choose_version(["0.4.10"])
    with pytest.raises(CompileError, match="predates standard JSON"):
        compilers.ensure_compiler("0.4.9")


def test_an_unpublished_version_is_refused_not_fetched():
    with pytest.raises(CompileError, match="not a published release"):
        compilers.ensure_compiler("0.4.99")
    with pytest.raises(ConfigError, match="not a compiler version"):
        compilers.ensure_compiler("0.4.26; rm -rf /")


@pytest.mark.slow
@pytest.mark.xdist_group("solc-0.4")
def test_legacy_contract_is_compiled_and_analysed_refused_for_its_finding(tmp_path):
    target = tmp_path / "Bank.sol"
    target.write_text(REENTRANT_04)
    report = vet_sources(target, policy=Policy()).report
    assert report.verdict == "refused"
    assert report.slither is not None
    assert report.slither.solc_version == LEGACY
    assert "reentrancy-eth" in {f.check for f in report.slither.blocking}

    cached = {c.version: c for c in compilers.cached_compilers()}[LEGACY]
    assert cached.integrity.startswith("sha512-")  # what npm verified the tarball against
    assert compilers.verify_cached(cached) is None


@pytest.mark.slow
@pytest.mark.xdist_group("solc-0.4")
def test_legacy_clean_contract_is_accepted(tmp_path):
    target = tmp_path / "Counter.sol"
    target.write_text(SAFE_04)
    report = vet_sources(target, policy=Policy()).report
    assert report.verdict == "accepted", report.outcomes
    assert report.slither is not None
    assert report.slither.solc_version == LEGACY


@pytest.mark.slow
def test_a_06_pin_the_toolchain_lacks_is_fetched_and_used(tmp_path):
    target = tmp_path / "Pinned.sol"
    target.write_text("pragma solidity 0.6.12;\ncontract Pinned { uint public x; }\n")
    report = vet_sources(target, policy=Policy()).report
    assert report.verdict == "accepted", report.outcomes
    assert report.slither is not None
    assert report.slither.solc_version == "0.6.12"


@pytest.mark.slow
@pytest.mark.xdist_group("solc-0.4")
def test_two_processes_installing_at_once_share_one_install(tmp_path):
    # A fresh cache (npm's own download cache makes the second fetch local and quick).
    env = {**os.environ, "DEFIAGENT_SOLC_CACHE": str(tmp_path / "solc")}
    code = (
        "from defiagent.vetting.compilers import ensure_compiler; "
        f"print(ensure_compiler({LEGACY!r}))"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert outs[0] == outs[1]
    assert Path(outs[0], "soljson.js").is_file()
    installs = [d for d in (tmp_path / "solc").iterdir() if d.is_dir()]
    assert [d.name for d in installs] == [LEGACY]  # no half-done staging folder left behind
    manifest = json.loads((installs[0] / compilers.MANIFEST).read_text())
    assert manifest["version"] == LEGACY


@pytest.mark.slow
@pytest.mark.xdist_group("solc-0.4")
def test_a_changed_soljson_is_caught(tmp_path, monkeypatch):
    compilers.ensure_compiler(LEGACY)  # shared cache: installed once
    real = {c.version: c for c in compilers.cached_compilers()}[LEGACY]
    fake = tmp_path / "solc"
    fake.mkdir()
    (fake / "soljson.js").write_bytes(Path(real.package_dir, "soljson.js").read_bytes() + b";")
    tampered = real.model_copy(update={"package_dir": str(fake)})
    assert "changed since npm installed" in (compilers.verify_cached(tampered) or "")


@pytest.mark.slow
def test_0_4_11_gives_only_a_legacy_ast_and_is_still_analysed(tmp_path):
    # solc 0.4.11 has no compact "ast" output: without the legacy one Slither would
    # analyse nothing and accept the contract.
    target = tmp_path / "Bank.sol"
    target.write_text(REENTRANT_04.replace("^0.4.11", "0.4.11"))
    report = vet_sources(target, policy=Policy()).report
    assert report.slither is not None
    assert report.slither.solc_version == "0.4.11"
    assert report.verdict == "refused"
    assert "reentrancy-eth" in {f.check for f in report.slither.blocking}


def test_a_unit_without_a_syntax_tree_is_never_analysed_as_empty(tmp_path):
    from defiagent.vetting.bundle import bundle_from_path
    from defiagent.vetting.compiler import compiler_output
    from defiagent.vetting.slither_runner import run_slither_bundle
    from defiagent.vetting.verdict import CouldNotAnalyse

    target = tmp_path / "NoAst.sol"
    target.write_text("pragma solidity =0.6.6;\ncontract NoAst { uint public x; }\n")
    bundle = bundle_from_path(target)
    _, output = compiler_output(bundle)
    data = json.loads(output.read_text())
    data["sources"]["NoAst.sol"].pop("ast")
    output.write_text(json.dumps(data))
    with pytest.raises(CouldNotAnalyse, match=r"no syntax tree for NoAst\.sol"):
        run_slither_bundle(bundle)
