"""The Slither gate on vulnerable contracts written for these tests, and signed triage."""

from __future__ import annotations

import time

import pytest
from web3 import Web3

from defiagent.allowlist.policy import Policy
from defiagent.allowlist.workflow import sign_triage
from defiagent.vetting.bundle import bundle_from_path
from defiagent.vetting.vet import vet_address, vet_sources
from tests.allowlist.support import CONTRACTS, compiled, contract, deploy, make_audit

pytestmark = pytest.mark.slow

VULNERABLE = [
    ("Reentrancy.sol", "reentrancy-eth", "ReentrantBank.withdraw()"),
    ("SelfdestructAnyone.sol", "suicidal", "Killable.kill()"),
    ("UnprotectedOwner.sol", "unprotected-auth-write", "OpenVault.setOwner(address)"),
    ("TxOriginAuth.sol", "tx-origin", "OriginWallet.pay(address,uint256)"),
    ("DelegatecallInput.sol", "controlled-delegatecall", "Forwarder.exec(address,bytes)"),
]


def _gate_failures(report):
    return [o.reason for o in report.outcomes if o.check == "slither-gate" and o.status == "fail"]


@pytest.mark.parametrize(("file", "check", "where"), VULNERABLE, ids=[v[1] for v in VULNERABLE])
def test_each_vulnerable_contract_fails_for_the_right_reason(file, check, where):
    report = vet_sources(CONTRACTS / "vulnerable" / file, policy=Policy()).report
    assert not report.passed
    reasons = _gate_failures(report)
    assert any(r.startswith(f"{check} (") and where in r for r in reasons), reasons


def test_the_same_owner_pattern_with_a_caller_check_passes(tmp_path):
    safe = (
        (CONTRACTS / "vulnerable" / "UnprotectedOwner.sol")
        .read_text()
        .replace(
            "function setOwner(address newOwner) external {",
            'function setOwner(address newOwner) external {\n        require(msg.sender == owner, "not owner");',
        )
    )
    (tmp_path / "OwnedVault.sol").write_text(safe)
    report = vet_sources(tmp_path / "OwnedVault.sol", policy=Policy()).report
    assert not [r for r in _gate_failures(report) if "unprotected-auth-write" in r]


@pytest.fixture(scope="module")
def bank():
    target = CONTRACTS / "vulnerable" / "Reentrancy.sol"
    vetting = vet_sources(target, policy=Policy())
    finding = next(f for f in vetting.report.slither.blocking if f.check == "reentrancy-eth")
    codehash = contract(vetting.ctx.compilation, "ReentrantBank").codehash
    return target, finding, codehash


def test_signed_triage_by_a_reviewer_waives_exactly_that_finding(bank, keys, reviewers):
    target, finding, codehash = bank
    triage = sign_triage(
        finding.id,
        finding.check,
        codehash,
        "withdrawals are capped off-chain; accepted",
        keys.reviewers[0],
    )
    report = vet_sources(target, policy=Policy(), reviewers=reviewers, triage=[triage]).report
    assert report.passed, [o.reason for o in report.failures()]
    waived = [o for o in report.outcomes if "waived by" in o.reason]
    assert waived
    assert keys.reviewers[0].address in waived[0].reason


@pytest.mark.parametrize("flaw", ["outsider", "other-code", "edited-reason", "no-reviewers-file"])
def test_triage_that_does_not_hold_waives_nothing(bank, keys, reviewers, flaw):
    target, finding, codehash = bank
    signer = keys.outsider if flaw == "outsider" else keys.reviewers[1]
    bound = "0x" + "00" * 32 if flaw == "other-code" else codehash
    triage = sign_triage(finding.id, finding.check, bound, "looked fine to me, honestly", signer)
    if flaw == "edited-reason":
        triage = triage.model_copy(update={"reason": "a different justification entirely"})
    report = vet_sources(
        target,
        policy=Policy(),
        reviewers=None if flaw == "no-reviewers-file" else reviewers,
        triage=[triage],
    ).report
    assert not report.passed
    warnings = [o.reason for o in report.outcomes if o.status == "warn"]
    expected = {
        "outsider": "not a listed reviewer",
        "other-code": "not the code analysed",
        "edited-reason": "signature does not match",
        "no-reviewers-file": "no reviewers file",
    }[flaw]
    assert any(expected in w for w in warnings), warnings


def test_policy_threshold_decides_what_fails():
    target = CONTRACTS / "vulnerable" / "TxOriginAuth.sol"  # tx-origin: Medium impact
    only_high = Policy.model_validate({"slither": {"fail_impacts": ["High"]}})
    report = vet_sources(target, policy=only_high).report
    assert not any("tx-origin" in r for r in _gate_failures(report))
    assert any(
        "tx-origin" in r for r in _gate_failures(vet_sources(target, policy=Policy()).report)
    )


def test_unchanged_sources_are_not_analysed_twice():
    target = CONTRACTS / "vulnerable" / "SelfdestructAnyone.sol"
    vet_sources(target, policy=Policy())
    started = time.perf_counter()
    again = vet_sources(target, policy=Policy())
    assert time.perf_counter() - started < 1.0
    assert again.report.slither.cached
    assert "cached" in again.report.slither_note


def test_sources_that_do_not_compile_fail_with_a_reason(tmp_path):
    (tmp_path / "Broken.sol").write_text("pragma solidity ^0.8.0;\ncontract Broken {\n")
    report = vet_sources(tmp_path / "Broken.sol", policy=Policy()).report
    assert not report.passed
    assert any("cannot be analysed" in o.reason for o in report.failures())


def test_an_audit_does_not_override_slither(anvil, keys, reviewers):
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    bank_contract = deploy(w3, contract(compiled("vulnerable/Reentrancy.sol"), "ReentrantBank"))
    code = w3.eth.get_code(bank_contract.address)
    policy = Policy.model_validate(
        {"audits": {"trusted_auditors": [{"name": "T", "address": keys.auditor.address}]}}
    )
    audit = make_audit(keys.auditor, [Web3.keccak(code).to_0x_hex()])
    vetting = vet_address(
        anvil.url,
        bank_contract.address,
        policy=policy,
        reviewers=reviewers,
        sources=bundle_from_path(CONTRACTS / "vulnerable" / "Reentrancy.sol"),
        audits=[audit],
    )
    by_check = {o.check: o for o in vetting.report.outcomes}
    assert by_check["audit-coverage"].status == "pass"
    assert by_check["source-match"].status == "pass"
    assert "full match" in by_check["source-match"].reason
    assert any("reentrancy-eth" in r for r in _gate_failures(vetting.report))
    assert not vetting.report.passed
