"""Helpers shared by tests/allowlist and tests/vetting: keys, files, sources, deployments.

Every key is a throwaway made here (Account.create()); nothing secret is stored.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path

import tomli_w
from eth_account import Account
from web3 import Web3

from defiagent.allowlist.models import (
    AllowlistEntry,
    AuditedContract,
    AuditFinding,
    AuditorInfo,
    AuditRecord,
    ProxyInfo,
    Role,
    SlitherSummary,
)
from defiagent.allowlist.store import entry_path
from defiagent.allowlist.tomlio import write_entry
from defiagent.allowlist.workflow import approve_entry
from defiagent.vetting.audits import sign_audit
from defiagent.vetting.bundle import (
    CompilerSettings,
    SourceBundle,
    bundle_from_path,
)
from defiagent.vetting.compiler import Compilation, CompiledContract, compile_bundle
from defiagent.vetting.npm_sources import npm_sources

CONTRACTS = Path(__file__).resolve().parent.parent / "contracts"
DEMO_TOKEN = (
    Path(__file__).resolve().parents[2] / "defiagent" / "devchain" / "sol" / "DemoToken.sol"
)

# Written reasons a reviewer gives for Slither findings in audited Uniswap V2 code. Keyed by
# check: the reviewer read each finding; these are the conclusions of that reading.
UNISWAP_TRIAGE_REASONS = {
    "weak-prng": "blockTimestamp % 2**32 is a deliberate uint32 truncation for the TWAP "
    "accumulator, not randomness",
    "incorrect-equality": "strict equality on totalSupply == 0 / a returned bool is intended; "
    "no attacker-controlled balance decides it",
    "reentrancy-no-eth": "the pair's lock modifier guards mint/burn/swap; state written after "
    "the call is the reserves sync, as audited",
    "reentrancy-balance": "the fee-on-transfer swap reads balances after transfers by design "
    "and checks amountOutMin at the end",
    "unchecked-transfer": "pair.transferFrom on a Uniswap V2 pair reverts on failure; the "
    "router only moves LP tokens it checked",
    "unused-return": "the ignored return values are reserves timestamps and amounts the "
    "router does not need; audited as benign",
}


class Keys:
    """Three reviewers (2-of-3) and one auditor, all throwaway."""

    def __init__(self) -> None:
        self.reviewers = [Account.create() for _ in range(3)]
        self.auditor = Account.create()
        self.outsider = Account.create()


def write_reviewers(root: Path, reviewers, threshold: int = 2) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    data = {
        "threshold": threshold,
        "reviewers": [
            {"name": f"reviewer-{i}", "address": a.address} for i, a in enumerate(reviewers)
        ],
    }
    path = root / "reviewers.toml"
    path.write_text(tomli_w.dumps(data))
    return path


def write_policy(root: Path, auditor, **sections) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    audits = {
        "trusted_auditors": [{"name": "Throwaway Audits", "address": auditor.address}],
        "require_auditor_signature": True,
        **sections.pop("audits", {}),
    }
    data = {"audits": audits, **sections}
    path = root / "policy.toml"
    path.write_text(tomli_w.dumps(data))
    return path


def make_root(tmp: Path, keys: Keys, threshold: int = 2, **policy) -> Path:
    write_reviewers(tmp, keys.reviewers, threshold)
    write_policy(tmp, keys.auditor, **policy)
    return tmp


def make_audit(
    auditor,
    codehashes: list[str],
    *,
    chain_id: int | None = None,
    address: str | None = None,
    findings: tuple[AuditFinding, ...] = (),
    issued_at: date | None = None,
    sign: bool = True,
    name: str = "Throwaway Audits",
) -> AuditRecord:
    record = AuditRecord(
        auditor=AuditorInfo(name=name, address=auditor.address, uri="https://audits.invalid"),
        issued_at=issued_at or datetime.now(UTC).date(),
        report_uri="https://audits.invalid/report.pdf",
        report_sha256="ab" * 32,
        contracts=[
            AuditedContract(chain_id=chain_id, address=address, runtime_codehash=h)
            for h in codehashes
        ],
        findings=list(findings),
    )
    return sign_audit(record, auditor) if sign else record


# ------------------------------------------------------------------ sources


def uniswap_bundle(which: str) -> SourceBundle:
    """The sources (and build settings) of the real Uniswap V2 / WETH9 / OZ contracts."""
    names = {
        "pair": "uniswap-v2-pair",
        "factory": "uniswap-v2-factory",
        "router": "uniswap-v2-router02",
        "weth": "weth9",
        "token": "demo-token",
    }
    return npm_sources(names[which])


@cache
def compiled(relative: str, evm_version: str | None = None) -> Compilation:
    settings = CompilerSettings(evm_version=evm_version, explicit=True) if evm_version else None
    return compile_bundle(bundle_from_path(CONTRACTS / relative, settings=settings))


def contract(compilation: Compilation, name: str) -> CompiledContract:
    return next(c for c in compilation.contracts if c.name == name)


def deploy(w3: Web3, compiled_contract: CompiledContract, *args, sender: str | None = None):
    sender = sender or w3.eth.accounts[0]
    factory = w3.eth.contract(abi=compiled_contract.abi, bytecode="0x" + compiled_contract.creation)
    receipt = w3.eth.wait_for_transaction_receipt(
        factory.constructor(*args).transact({"from": sender})
    )
    assert receipt["status"] == 1
    return w3.eth.contract(address=receipt["contractAddress"], abi=compiled_contract.abi)


def transact(w3: Web3, fn, sender: str | None = None):
    receipt = w3.eth.wait_for_transaction_receipt(
        fn.transact({"from": sender or w3.eth.accounts[0]})
    )
    assert receipt["status"] == 1
    return receipt


# ------------------------------------------------------------------ entries


def approved_entry(
    root: Path,
    keys: Keys,
    *,
    chain_id: int,
    address: str,
    codehash: str,
    proxy: ProxyInfo | None = None,
    name: str = "test contract",
    role: Role = Role.OTHER,
) -> Path:
    """An entry with a signed audit of its code, a clean Slither summary, two approvals.

    For tests of what happens *after* approval (drift); the propose path is tested on
    the real Uniswap stack.
    """
    logic_hash = proxy.implementation_codehash if proxy else codehash
    hashes = [codehash] + ([proxy.implementation_codehash] if proxy else [])
    entry = AllowlistEntry(
        chain_id=chain_id,
        address=address,
        name=name,
        role=role,
        codehash=codehash,
        proxy=proxy,
        audits=[make_audit(keys.auditor, hashes)],
        slither=SlitherSummary(slither_version="0.11.6", codehash=logic_hash, source_match="full"),
    )
    path = entry_path(root, chain_id, address)
    write_entry(path, entry)
    for reviewer in keys.reviewers[:2]:
        approve_entry(path, reviewer, root=root)
    return path
