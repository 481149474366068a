"""Reusable reviews: a signed triage bound to a source file's sha256 waives that finding in
every contract built with that exact file, and in nothing else.

Real Uniswap V2 (pair, factory, Router02, deployed on anvil and taken through propose,
approve and the agent's load) and OpenZeppelin's ERC-4626 (two vaults sharing Math.sol)
are accepted with one signed record per dependency finding. An attacker who swaps the
dependency, edits a record, forges or drops its signature, gets nothing waived.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from eth_account import Account
from web3 import Web3

from defiagent.allowlist.models import Role, TriagedFinding
from defiagent.allowlist.policy import Policy
from defiagent.allowlist.store import load_active_allowlist
from defiagent.allowlist.verify import verify_allowlist
from defiagent.allowlist.workflow import (
    approve_entry,
    load_triage_file,
    propose_entry,
    sign_source_triages,
    sign_triage,
)
from defiagent.chain.anvil import Anvil
from defiagent.cli.app import main
from defiagent.devchain.deploy import create_pool, deploy_uniswap_v2
from defiagent.signing.keystore import write_keystore
from defiagent.toolchain import node_modules
from defiagent.vetting.bundle import bundle_from_metadata
from defiagent.vetting.npm_sources import npm_sources
from defiagent.vetting.reusable_triage import waives
from defiagent.vetting.vet import vet_sources
from tests.allowlist.support import UNISWAP_TRIAGE_REASONS, Keys, make_audit, make_root

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("reusable-triage")]

VAULTS = Path(__file__).resolve().parents[1] / "contracts" / "defi" / "erc4626"
MATH = "@openzeppelin/contracts/utils/math/Math.sol"
MATH_REASON = (
    "Math.mulDiv and Math.invMod are OpenZeppelin's audited full-precision arithmetic; the "
    "divisions before multiplications are the intended Newton iterations"
)


def _factory_bundle():
    # From the factory artifact's own metadata: the same unit names as the pair's
    # (contracts/UniswapV2Pair.sol), so a pair finding has one id in both.
    artifact = json.loads(
        (node_modules() / "@uniswap/v2-core/build/UniswapV2Factory.json").read_text()
    )
    return bundle_from_metadata(
        json.loads(artifact["metadata"]), node_modules() / "@uniswap/v2-core"
    )


def _distinct(findings) -> dict:
    return {(f.id, f.check): f for f in findings}


# ------------------------------------------------------------------ Uniswap V2


@pytest.fixture(scope="module")
def uniswap(tmp_path_factory):
    keys = Keys()
    with Anvil(log_dir=tmp_path_factory.mktemp("anvil")) as node:
        w3 = Web3(Web3.HTTPProvider(node.url))
        d = create_pool(w3, deploy_uniswap_v2(w3), 10**24, 2 * 10**24)
        root = make_root(tmp_path_factory.mktemp("allowlist") / "contracts_allowlist", keys)
        bundles = {
            "pair": npm_sources("uniswap-v2-pair"),
            "factory": _factory_bundle(),
            "router": npm_sources("uniswap-v2-router02"),
        }
        failing = {
            name: vet_sources(bundle, policy=Policy()).report.slither.failing
            for name, bundle in bundles.items()
        }
        # One signed record per distinct finding of a file, whatever imports it.
        distinct = _distinct(f for fs in failing.values() for f in fs)
        records = [
            r
            for f in distinct.values()
            for r in sign_source_triages([f], UNISWAP_TRIAGE_REASONS[f.check], keys.reviewers[0])
        ]
        addresses = {"pair": d.pair, "factory": d.factory, "router": d.router}
        proposals = {}
        for name, address in addresses.items():
            codehash = Web3.keccak(w3.eth.get_code(address)).to_0x_hex()
            proposals[name] = propose_entry(
                root,
                address,
                rpc=node.url,
                name=f"Uniswap V2 {name}",
                role={"pair": Role.POOL, "factory": Role.FACTORY, "router": Role.ROUTER}[name],
                sources=bundles[name],
                audits=[make_audit(keys.auditor, [codehash])],
                triage=records,
            )
        for proposal in proposals.values():
            for reviewer in keys.reviewers[:2]:
                approve_entry(proposal.entry_path, reviewer, root=root)
        yield {
            "keys": keys,
            "root": root,
            "url": node.url,
            "chain_id": d.chain_id,
            "failing": failing,
            "records": records,
            "proposals": proposals,
            "addresses": addresses,
        }


def test_uniswap_v2_needs_one_record_per_distinct_finding(uniswap):
    failing, records = uniswap["failing"], uniswap["records"]
    per_contract = sum(len(fs) for fs in failing.values())
    assert len(records) == len(_distinct(f for fs in failing.values() for f in fs))
    assert len(records) < per_contract  # the pair's findings are not triaged again for the factory
    pair_ids = {f.id for f in failing["pair"]}
    assert pair_ids
    assert pair_ids <= {f.id for f in failing["factory"]}
    assert {r.source_unit for r in records} >= {
        "contracts/UniswapV2Pair.sol",
        "UniswapV2Router02.sol",
    }


def test_uniswap_v2_is_accepted_through_reusable_triage(uniswap):
    proposals, records = uniswap["proposals"], uniswap["records"]
    by_signature = {r.signature: r for r in records}
    for name, proposal in proposals.items():
        gate = proposal.report.slither
        assert proposal.passed, (name, [o.reason for o in proposal.report.failures()])
        assert gate.failing
        assert not gate.blocking
        assert not gate.triage_problems  # records about other files are simply not for it
        assert all(w.triage.signature in by_signature for w in gate.waived)
    # The factory is waived by the very records that waive the pair.
    pair_records = {w.triage.signature for w in proposals["pair"].report.slither.waived}
    factory_records = {w.triage.signature for w in proposals["factory"].report.slither.waived}
    assert pair_records < factory_records
    # Approved entries hold and the agent loads them.
    active = load_active_allowlist(uniswap["root"], uniswap["chain_id"])
    assert set(uniswap["addresses"].values()) <= set(active.entries)
    report = verify_allowlist(uniswap["root"], uniswap["url"])
    assert report.passed, [
        (e.path, [o.reason for o in e.outcomes if o.status == "fail"]) for e in report.entries
    ]


def test_an_entry_records_where_each_source_triaged_finding_lies(uniswap):
    entry = uniswap["proposals"]["pair"].entry
    assert set(entry.slither.failing_sources) == set(entry.slither.failing)
    assert all(
        t.source_sha256 == entry.slither.failing_sources[t.slither_id]
        for t in entry.slither.triaged
    )


def test_per_source_triage_in_an_entry_lets_reviewers_approve(uniswap, tmp_path):
    from defiagent.allowlist.workflow import triage_findings
    from defiagent.errors import Refused

    keys = uniswap["keys"]
    root = make_root(tmp_path / "contracts_allowlist", keys)
    pair = uniswap["addresses"]["pair"]
    proposal = propose_entry(
        root,
        pair,
        rpc=uniswap["url"],
        name="pair, triaged in the entry",
        role=Role.POOL,
        sources=npm_sources("uniswap-v2-pair"),
        audits=uniswap["proposals"]["pair"].entry.audits,
    )
    ids = [f.id[:10] for f in proposal.report.slither.blocking]
    with pytest.raises(Refused, match="not triaged"):
        approve_entry(proposal.entry_path, keys.reviewers[0], root=root)
    records = triage_findings(
        proposal.entry_path,
        ids,
        UNISWAP_TRIAGE_REASONS["weak-prng"],
        keys.reviewers[0],
        root=root,
        per_source=True,
    )
    assert {r.source_unit for r in records} == {"contracts/UniswapV2Pair.sol"}
    for reviewer in keys.reviewers[:2]:
        approve_entry(proposal.entry_path, reviewer, root=root)
    assert pair in load_active_allowlist(root, uniswap["chain_id"]).entries


# ------------------------------------------------------------------ OpenZeppelin ERC-4626


@pytest.fixture(scope="module")
def vaults():
    keys = Keys()
    stable = vet_sources(VAULTS / "StableVault.sol", policy=Policy())
    failing = stable.report.slither.failing
    records = sign_source_triages(failing, MATH_REASON, keys.reviewers[0])
    reviewers = _reviewers(keys)
    return {"keys": keys, "failing": failing, "records": records, "reviewers": reviewers}


def _reviewers(keys):
    from defiagent.allowlist.reviewers import Reviewers

    return Reviewers.model_validate(
        {
            "threshold": 2,
            "reviewers": [
                {"name": f"r{i}", "address": a.address} for i, a in enumerate(keys.reviewers)
            ],
        }
    )


def _vet(path: Path, vaults, records):
    return vet_sources(path, policy=Policy(), reviewers=vaults["reviewers"], triage=records)


def test_math_sol_is_triaged_once_for_every_vault(vaults):
    failing, records = vaults["failing"], vaults["records"]
    # OpenZeppelin's Math.sol raises its findings in every contract that imports it.
    assert len(failing) >= 5
    assert {f.files[MATH] for f in failing if MATH in f.files}
    assert {r.source_unit for r in records} == {MATH}
    assert len(records) == len(failing)  # one record per dependency finding
    for vault in ("StableVault.sol", "YieldVault.sol"):
        report = _vet(VAULTS / vault, vaults, records).report
        assert report.passed, (vault, [o.reason for o in report.failures()])
        assert len(report.slither.waived) == len(records)


@pytest.fixture
def swapped_math(tmp_path):
    """YieldVault built against a Math.sol that differs by one comment: the same findings,
    at the same places, with the same Slither ids, in another file."""
    project = tmp_path / "vault"
    oz = project / "node_modules" / "@openzeppelin" / "contracts"
    shutil.copytree(node_modules() / "@openzeppelin" / "contracts", oz)
    math = oz / "utils" / "math" / "Math.sol"
    math.write_text(math.read_text() + "\n// swapped by someone else\n")
    shutil.copy(VAULTS / "YieldVault.sol", project / "YieldVault.sol")
    return project / "YieldVault.sol"


def test_a_record_for_another_file_hash_does_not_apply(vaults, swapped_math):
    report = _vet(swapped_math, vaults, vaults["records"]).report
    assert not report.passed
    gate = report.slither
    assert {f.id for f in gate.blocking} == {r.slither_id for r in vaults["records"]}
    assert not gate.waived
    assert all("another file" in p for p in gate.triage_problems)


def _forged(record: TriagedFinding, **update) -> TriagedFinding:
    return TriagedFinding.model_validate({**record.model_dump(), **update})


@pytest.mark.parametrize(
    "attack", ["rebound-to-swapped-file", "no-signature", "outsider", "as-codehash"]
)
def test_an_edited_or_forged_record_does_not_apply(vaults, swapped_math, attack):
    from defiagent.vetting.reusable_triage import source_hashes

    keys, records = vaults["keys"], vaults["records"]
    swapped = source_hashes({MATH: (swapped_math.parent / "node_modules" / MATH).read_text()})[MATH]
    target = VAULTS / "YieldVault.sol"
    if attack == "rebound-to-swapped-file":  # the attacker points the records at their file
        forged = [_forged(r, source_sha256=swapped) for r in records]
        target = swapped_math
    elif attack == "no-signature":
        forged = [_forged(r, signature="0x" + "00" * 65) for r in records]
    elif attack == "outsider":
        forged = sign_source_triages(vaults["failing"], MATH_REASON, keys.outsider)
    else:  # a source-bound signature presented as a codehash-bound record
        forged = [
            _forged(r, source_sha256=None, source_unit=None, codehash="0x" + "11" * 32)
            for r in records
        ]
    report = _vet(target, vaults, forged).report
    assert not report.passed
    assert not report.slither.waived
    assert len(report.slither.triage_problems) == len(forged)


def test_a_codehash_record_of_one_vault_does_not_carry_to_the_other(vaults):
    finding = vaults["failing"][0]
    stable = vet_sources(VAULTS / "StableVault.sol", policy=Policy())
    codehash = next(c.codehash for c in stable.ctx.compilation.contracts if c.name == "StableVault")
    record = sign_triage(
        finding.id, finding.check, codehash, MATH_REASON, vaults["keys"].reviewers[0]
    )
    report = _vet(VAULTS / "YieldVault.sol", vaults, [record]).report
    assert finding.id in {f.id for f in report.slither.blocking}


def test_a_source_record_waives_only_a_finding_lying_wholly_in_its_file(vaults):
    record = vaults["records"][0]
    inside = {record.source_unit: record.source_sha256}
    assert waives(record, record.slither_id, record.check, inside)
    # The same finding reaching into the contract's own file is not the library's alone.
    assert not waives(record, record.slither_id, record.check, {**inside, "Vault.sol": "ab" * 32})
    assert not waives(record, record.slither_id, "other-check", inside)
    assert not waives(record, record.slither_id, record.check, {record.source_unit: "cd" * 32})


# ------------------------------------------------------------------ the command line

PASSWORD_ENV = "DEFIAGENT_TEST_TRIAGE_PASSWORD"


@pytest.fixture
def cli(tmp_path, vaults, monkeypatch):
    keys = vaults["keys"]
    password = Account.create().key.hex()  # throwaway
    store = tmp_path / "r0.json"
    write_keystore(store, bytes(keys.reviewers[0].key), password, light=True)
    root = make_root(tmp_path / "contracts_allowlist", keys)
    prompts = []

    def prompt(label, *, confirm=False):
        prompts.append(label)
        return password

    monkeypatch.setattr("defiagent.signing.passwords.prompt_secret", prompt)
    return {"root": root, "key": store, "prompts": prompts, "out": tmp_path / "triage.toml"}


def _run(capsys, *argv):
    code = main([*argv])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip().startswith("{") else None


def test_triage_takes_many_findings_with_one_password_prompt(capsys, cli, vaults):
    ids = [f.id[:12] for f in vaults["failing"]]
    code, out = _run(
        capsys,
        "allowlist", "triage", str(VAULTS / "StableVault.sol"), *ids,
        "--reason", MATH_REASON, "--key", str(cli["key"]), "--out", str(cli["out"]),
        "--allowlist", str(cli["root"]), "--json",
    )  # fmt: skip
    assert code == 0, out
    assert len(cli["prompts"]) == 1
    written = load_triage_file(cli["out"])
    assert len(written) == len(ids)
    assert {t.source_unit for t in written} == {MATH}
    # The file is what `vet --triage` reads: the other vault passes with it.
    code, out = _run(
        capsys, "vet", str(VAULTS / "YieldVault.sol"), "--triage", str(cli["out"]),
        "--allowlist", str(cli["root"]), "--json",
    )  # fmt: skip
    assert code == 0, out
    assert out["ok"] is True


def test_one_bad_id_refuses_the_lot_before_the_prompt(capsys, cli, vaults):
    ids = [vaults["failing"][0].id[:12], "ffffffffffff"]
    code, out = _run(
        capsys,
        "allowlist", "triage", str(VAULTS / "StableVault.sol"), *ids,
        "--reason", MATH_REASON, "--key", str(cli["key"]), "--out", str(cli["out"]),
        "--allowlist", str(cli["root"]), "--json",
    )  # fmt: skip
    assert code == 2
    assert "ffffffffffff names no failing finding" in out["error"]["message"]
    assert cli["prompts"] == []
    assert not cli["out"].exists()
