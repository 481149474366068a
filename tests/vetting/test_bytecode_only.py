"""The bytecode-only review tier: a contract proposed without sources, judged on its runtime
bytecode by the real Mythril (.venv-mythril), on a real anvil chain.

Off by default: without `[sources] when_missing = "bytecode-only"` such a contract is
refused with one sentence naming that setting. With it: Mythril must run (a missing Mythril
is exit 3), a high-severity issue refuses, a Mythril that fails gives "could not analyse",
audits and M-of-N approvals are required as ever, and the entry records (and its reviewers
sign) that it was reviewed on bytecode only. Sources that are given are still bound to the
deployed code: the tier is no way around a mismatch.

The contracts are small and named for this file, so no other test's cached Slither result
stands in for their sources; Mythril's results are cached per codehash (one run each).
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from web3 import Web3

from defiagent.allowlist.models import AllowlistEntry
from defiagent.allowlist.signatures import canonical_json
from defiagent.allowlist.store import entry_path, load_active_allowlist
from defiagent.allowlist.tomlio import read_entry
from defiagent.allowlist.verify import verify_allowlist
from defiagent.allowlist.workflow import approve_entry, propose_entry
from defiagent.cli.app import main
from defiagent.errors import Refused, ToolMissing
from defiagent.vetting.bundle import bundle_from_path
from defiagent.vetting.compiler import compile_bundle
from tests.allowlist.support import Keys, deploy, make_audit, make_root, write_policy

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("mythril")]

TIMEOUT = 5  # seconds of symbolic execution: plenty for these two contracts

CLEAN = (
    "// SPDX-License-Identifier: MIT\npragma solidity ^0.8.0;\n"
    "contract BytecodeOnlyStore {\n"
    "    uint256 public stored;\n"
    "    function set(uint256 value) external { stored = value; }\n"
    "}\n"
)
# An unprotected selfdestruct: anyone can destroy it (Mythril SWC-106, high severity).
KILLABLE = (
    "// SPDX-License-Identifier: MIT\npragma solidity ^0.8.0;\n"
    "contract BytecodeOnlyKillable {\n"
    "    function kill() external { selfdestruct(payable(msg.sender)); }\n"
    "}\n"
)
SETTING = '[sources] when_missing = "bytecode-only"'


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bytecode-only-sources")
    (folder / "BytecodeOnlyStore.sol").write_text(CLEAN)
    (folder / "BytecodeOnlyKillable.sol").write_text(KILLABLE)
    return folder


@pytest.fixture(scope="module")
def compiled(sources):
    return {
        name: next(c for c in compile_bundle(bundle_from_path(sources / f"{name}.sol")).contracts)
        for name in ("BytecodeOnlyStore", "BytecodeOnlyKillable")
    }


@pytest.fixture
def world(w3, compiled):
    """Both contracts deployed on a fresh anvil: name -> (address, runtime codehash)."""
    out = {}
    for name, contract in compiled.items():
        address = deploy(w3, contract).address
        out[name] = (address, Web3.keccak(w3.eth.get_code(address)).to_0x_hex())
    return out


def opted_in(tmp_path: Path, keys: Keys) -> Path:
    return make_root(
        tmp_path / "allowlist",
        keys,
        sources={"when_missing": "bytecode-only"},
        mythril={"execution_timeout": TIMEOUT},  # `use` stays "off": the tier runs it anyway
    )


def by_check(report) -> dict[str, list]:
    out: dict[str, list] = {}
    for o in report.outcomes:
        out.setdefault(o.check, []).append(o)
    return out


def propose(root, anvil, world, name, keys, *, audited: bool = True, **kwargs):
    address, codehash = world[name]
    audits = [make_audit(keys.auditor, [codehash])] if audited else []
    return propose_entry(root, address, rpc=anvil.url, name=name, audits=audits, **kwargs)


def cli(capsys, *argv: str) -> tuple[int, dict]:
    code = main([*argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


# ------------------------------------------------------------------------------ the tests


def test_without_the_opt_in_no_sources_is_refused_naming_the_setting(
    tmp_path, keys, anvil, world, capsys
):
    root = make_root(tmp_path / "allowlist", keys)  # the default policy: refuse
    proposal = propose(root, anvil, world, "BytecodeOnlyStore", keys)
    assert proposal.report.verdict == "refused"
    assert proposal.entry.review_basis == "sources"
    assert proposal.report.review_note is None
    assert proposal.report.mythril is None  # [mythril] use is off, and nothing forced it
    checks = by_check(proposal.report)
    assert checks["slither-gate"][0].status == "fail"
    assert SETTING in checks["slither-gate"][0].reason
    assert proposal.sources_missing is not None
    assert SETTING in proposal.sources_missing

    address = world["BytecodeOnlyStore"][0]
    code, out = cli(
        capsys,
        *("allowlist", "propose", address, "--rpc-url", anvil.url, "--name", "store"),
        *("--allowlist", str(root)),
    )
    assert code == 1
    assert not out["ok"]
    assert SETTING in out["refusal"]
    assert out["review_basis"] == "sources"
    # The human output says it in one sentence too.
    assert main(["allowlist", "propose", address, "--rpc-url", anvil.url, "--name", "store",
                 "--allowlist", str(root)]) == 1  # fmt: skip
    human = " ".join(capsys.readouterr().out.split())
    assert "REFUSED" in human
    assert SETTING in human


def test_opt_in_clean_mythril_and_signed_audit_is_accepted_recorded_and_signed(
    tmp_path, keys, anvil, w3, world, capsys
):
    root = opted_in(tmp_path, keys)
    proposal = propose(root, anvil, world, "BytecodeOnlyStore", keys)
    report = proposal.report
    assert report.verdict == "accepted", report.failures()
    address, codehash = world["BytecodeOnlyStore"]
    checks = by_check(report)
    assert [o.status for o in checks["mythril"]] == ["pass"]
    assert [o.status for o in checks["slither-gate"]] == ["warn"]
    assert [o.status for o in checks["source-match"]] == ["warn"]
    assert [o.status for o in checks["audit-coverage"]] == ["pass"]
    line = (
        "bytecode-only review: no sources; Slither not run; Mythril: no high-severity issue "
        f"within {TIMEOUT} s"
    )
    assert report.review_note is not None
    assert report.review_note.startswith(line)

    entry = proposal.entry
    assert entry.review_basis == "bytecode"
    assert entry.slither is None
    assert len(entry.mythril) == 1
    assert entry.mythril[0].codehash == codehash
    assert entry.mythril[0].high == []
    assert entry.mythril[0].execution_timeout == TIMEOUT
    assert read_entry(proposal.entry_path) == entry  # written and read back losslessly
    assert 'review_basis = "bytecode"' in proposal.entry_path.read_text()
    assert line in proposal.report_path.read_text()
    assert b'"review_basis":"bytecode"' in canonical_json(entry)  # what reviewers sign

    for reviewer in keys.reviewers[:2]:
        approve_entry(proposal.entry_path, reviewer, root=root)
    active = load_active_allowlist(root, w3.eth.chain_id)
    assert active.get(address) is not None
    assert verify_allowlist(root, anvil.url).passed

    # `allowlist show` and `vet` say it plainly (Mythril's result is cached by codehash).
    code, out = cli(capsys, "allowlist", "show", address, "--allowlist", str(root))
    assert code == 0
    assert out["active"]
    assert out["review_basis"] == "bytecode"
    assert out["review_note"].startswith(line)
    code, out = cli(capsys, "vet", address, "--rpc-url", anvil.url, "--allowlist", str(root))
    assert code == 0, out
    assert out["verdict"] == "accepted"
    assert out["report"]["review_note"].startswith(line)
    assert out["report"]["mythril"][0]["cached"]

    # The basis is signed: flipping it (or dropping the line) after approval voids the
    # approvals, and the allowlist no longer loads or verifies.
    text = proposal.entry_path.read_text()
    for tampered in (
        text.replace('review_basis = "bytecode"', 'review_basis = "sources"'),
        text.replace('review_basis = "bytecode"\n', ""),
    ):
        assert tampered != text
        proposal.entry_path.write_text(tampered)
        with pytest.raises(Refused, match="is not valid"):
            load_active_allowlist(root, w3.eth.chain_id)
        report = verify_allowlist(root)
        assert not report.passed
        failing = [o.reason for e in report.entries for o in e.outcomes if o.status == "fail"]
        assert any("edited after signing" in r for r in failing), failing
    proposal.entry_path.write_text(text)
    assert load_active_allowlist(root, w3.eth.chain_id).get(address) is not None

    # Turning the tier off again makes bytecode-only entries invalid (fail closed).
    write_policy(root, keys.auditor, mythril={"execution_timeout": TIMEOUT})
    with pytest.raises(Refused, match="bytecode alone"):
        load_active_allowlist(root, w3.eth.chain_id)


def test_opt_in_without_an_audit_is_refused(tmp_path, keys, anvil, world):
    root = opted_in(tmp_path, keys)
    proposal = propose(root, anvil, world, "BytecodeOnlyStore", keys, audited=False)
    assert proposal.report.verdict == "refused"
    assert proposal.entry.review_basis == "bytecode"
    failing = {o.check for o in proposal.report.failures()}
    assert failing == {"audit-coverage"}
    with pytest.raises(Refused, match="will not sign"):
        approve_entry(proposal.entry_path, keys.reviewers[0], root=root)


def test_opt_in_refuses_a_high_severity_mythril_issue(tmp_path, keys, anvil, world, capsys):
    root = opted_in(tmp_path, keys)
    proposal = propose(root, anvil, world, "BytecodeOnlyKillable", keys)
    report = proposal.report
    assert report.verdict == "refused"
    mythril = [o for o in report.failures() if o.check == "mythril"]
    assert len(mythril) == 1
    assert "SWC-106" in mythril[0].reason
    assert {o.check for o in report.failures()} == {"mythril"}  # audited; the rest warns
    assert "1 high-severity issue(s)" in (report.review_note or "")
    assert proposal.entry.review_basis == "bytecode"
    assert [len(m.high) for m in proposal.entry.mythril] == [1]
    with pytest.raises(Refused, match="SWC-106"):
        approve_entry(proposal.entry_path, keys.reviewers[0], root=root)

    address = world["BytecodeOnlyKillable"][0]
    code, out = cli(
        capsys,
        *("allowlist", "propose", address, "--rpc-url", anvil.url, "--name", "killable"),
        *("--allowlist", str(root)),
    )
    assert code == 1
    assert out["review_basis"] == "bytecode"
    assert out["refusal"] is None  # refused for what Mythril found, not for want of sources
    assert out["report"]["mythril"][0]["cached"]


def test_opt_in_never_excuses_sources_that_do_not_match(tmp_path, keys, anvil, world, sources):
    root = opted_in(tmp_path, keys)
    # The killable contract's sources, given for the store's deployed code.
    proposal = propose(
        root,
        anvil,
        world,
        "BytecodeOnlyStore",
        keys,
        sources=sources / "BytecodeOnlyKillable.sol",
    )
    assert proposal.report.verdict == "refused"
    assert proposal.entry.review_basis == "sources"
    assert proposal.report.review_note is None
    assert proposal.report.mythril is None  # the tier did not step in
    checks = by_check(proposal.report)
    assert checks["source-match"][0].status == "fail"
    assert "mismatch" in checks["source-match"][0].reason
    assert checks["slither-gate"][0].status == "fail"
    assert "do not describe the deployed" in checks["slither-gate"][0].reason


def test_opt_in_without_mythril_is_an_infrastructure_error(
    tmp_path, keys, anvil, world, capsys, monkeypatch
):
    root = opted_in(tmp_path, keys)
    monkeypatch.setenv("DEFIAGENT_MYTH", str(tmp_path / "no-such-myth"))
    with pytest.raises(ToolMissing, match="on its bytecode alone"):
        propose(root, anvil, world, "BytecodeOnlyStore", keys)
    address = world["BytecodeOnlyStore"][0]
    code, out = cli(
        capsys,
        *("allowlist", "propose", address, "--rpc-url", anvil.url, "--name", "store"),
        *("--allowlist", str(root)),
    )
    assert code == 3
    assert out["error"]["kind"] == "infrastructure"
    assert "Mythril is not installed" in out["error"]["message"]


def test_a_mythril_that_fails_gives_could_not_analyse(tmp_path, keys, anvil, world, monkeypatch):
    root = opted_in(tmp_path, keys)
    broken = tmp_path / "bin" / "myth"  # fault injection: a Mythril that crashes
    broken.parent.mkdir()
    broken.write_text("#!/bin/sh\necho 'Traceback: solver crashed' >&2\nexit 1\n")
    broken.chmod(broken.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("DEFIAGENT_MYTH", str(broken))
    proposal = propose(root, anvil, world, "BytecodeOnlyStore", keys)
    assert proposal.report.verdict == "could-not-analyse", proposal.report.failures()
    [failed] = proposal.report.failures()
    assert failed.check == "mythril"
    assert failed.unanalysed
    assert "solver crashed" in failed.reason
    assert "could not analyse" in (proposal.report.review_note or "")
    assert proposal.entry.mythril == []
    with pytest.raises(Refused, match="needs a Mythril result"):
        approve_entry(proposal.entry_path, keys.reviewers[0], root=root)


def test_entries_without_the_field_keep_their_hash_and_read_as_sources(tmp_path):
    entry = AllowlistEntry(
        chain_id=31337,
        address="0x" + "11" * 20,
        name="signed before the tier existed",
        role="other",
        codehash="0x" + "22" * 32,
    )
    signed = canonical_json(entry)
    assert b"review_basis" not in signed
    assert b"mythril" not in signed
    path = entry_path(tmp_path, 31337, entry.address)
    path.parent.mkdir(parents=True)
    path.write_text(
        f'schema_version = 1\nchain_id = 31337\naddress = "{entry.address}"\n'
        f'name = "{entry.name}"\nrole = "other"\ncodehash = "{entry.codehash}"\n'
    )
    loaded = read_entry(path)
    assert loaded.review_basis == "sources"
    assert loaded.mythril == []
    assert canonical_json(loaded) == signed
