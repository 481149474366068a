"""The demo's allowlist, built with the real vetting workflow in a throwaway folder.

Two throwaway reviewer keys (2-of-2) and a throwaway auditor key are made on the spot. For
each deployed contract: an audit record of its runtime code, signed by the auditor, with
its report file beside it; `propose_entry` (compile the sources, bind them to the deployed
bytecode, run the Slither gate, judge the audits); a reviewer's signed, written triage of
each Slither finding on the audited Uniswap V2 code; then `approve_entry` by both
reviewers. The agent then loads the folder through `load_active_allowlist`, like any other.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import tomli_w
from eth_account import Account
from eth_typing import ChecksumAddress
from web3 import Web3

from defiagent.agent.devnet import DemoMarket
from defiagent.allowlist.models import (
    ActiveAllowlist,
    AuditedContract,
    AuditorInfo,
    AuditRecord,
    Role,
)
from defiagent.allowlist.store import load_active_allowlist
from defiagent.allowlist.workflow import approve_entry, propose_entry, sidecar, triage_finding
from defiagent.errors import Refused
from defiagent.protocols import registry
from defiagent.vetting.audits import sign_audit
from defiagent.vetting.bundle import SourceBundle
from defiagent.vetting.npm_sources import npm_sources
from defiagent.vetting.slither_gate import findings as slither_findings

# What the demo reviewer writes for Slither findings on the audited Uniswap V2 code.
TRIAGE_REASONS = {
    "weak-prng": "blockTimestamp % 2**32 truncates to uint32 for the TWAP accumulator; "
    "it is not used as randomness",
    "incorrect-equality": "strict equality on totalSupply == 0 or a returned value is "
    "intended; no attacker-controlled balance decides it",
    "reentrancy-no-eth": "the pair's lock modifier guards mint, burn and swap; the state "
    "written after the call is the reserve sync, as audited",
    "reentrancy-balance": "balances are read after transfers by design and the minimum "
    "out is checked at the end",
    "unchecked-transfer": "transferFrom on a Uniswap V2 pair reverts on failure",
    "unused-return": "the ignored return values are not needed by the caller; audited as benign",
}
GENERIC_REASON = "demo triage: reviewed against the audited upstream source; benign here"


def scoped(address: str, name: str, protocol: str, kind: str) -> Contract:
    """A contract to review as the registry's scope `kind` of `protocol` has it: its role,
    the functions the agent may call, and the npm sources behind its devnet bytecode (None
    for a scope whose package ships no sources: it is reviewed on its bytecode alone)."""
    scope = registry.scope(protocol, kind)
    if scope.npm_source is not None:
        sources: SourceBundle | None = npm_sources(scope.npm_source)
    elif scope.no_sources is not None:
        sources = None
    else:
        raise ValueError(f"{protocol} {kind} names no npm sources to review")
    return (address, name, scope.role, sources, list(scope.functions))


# Mythril's budget per contract reviewed on bytecode alone, on a devnet or in the demo.
BYTECODE_MYTHRIL_SECONDS = 10


def write_trust_roots(root: Path, reviewers: list, auditor, *, bytecode_only: bool = False) -> None:
    """reviewers.toml and policy.toml; `bytecode_only` lets contracts whose sources are not
    published be reviewed on their bytecode (Mythril instead of Slither)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "reviewers.toml").write_text(
        tomli_w.dumps(
            {
                "threshold": len(reviewers),
                "reviewers": [
                    {"name": f"demo reviewer {i + 1}", "address": r.address}
                    for i, r in enumerate(reviewers)
                ],
            }
        )
    )
    policy: dict = {
        "audits": {
            "trusted_auditors": [{"name": "Demo Audits", "address": auditor.address}],
            "require_auditor_signature": True,
        }
    }
    if bytecode_only:
        policy["sources"] = {"when_missing": "bytecode-only"}
        policy["mythril"] = {"execution_timeout": BYTECODE_MYTHRIL_SECONDS}
    (root / "policy.toml").write_text(tomli_w.dumps(policy))


def _audit(root: Path, auditor, name: str, chain_id: int, address: str, codehash: str):
    reports = root / "audits"
    reports.mkdir(exist_ok=True)
    report = reports / f"{address}.md"
    report.write_text(
        f"# Demo audit of {name}\n\nRuntime code {codehash} at {address} on chain {chain_id}.\n"
        "Throwaway record made by `defiagent demo`; no findings.\n"
    )
    record = AuditRecord(
        auditor=AuditorInfo(name="Demo Audits", address=auditor.address),
        issued_at=datetime.now(UTC).date(),
        report_uri=f"audits/{report.name}",
        report_sha256=hashlib.sha256(report.read_bytes()).hexdigest(),
        contracts=[AuditedContract(chain_id=chain_id, address=address, runtime_codehash=codehash)],
    )
    return sign_audit(record, auditor)


# (address, name, role, sources, allowed functions) of one contract to review; sources None:
# on its bytecode alone.
Contract = tuple[str, str, Role, SourceBundle | None, list]


def market_contracts(market: DemoMarket) -> list[Contract]:
    """The demo market's contracts with the sources behind their npm bytecode."""
    d = market.dex
    assert d.pair is not None  # deploy_market made the pool
    return [
        scoped(d.router, "UniswapV2Router02", "uniswap-v2", "router"),
        scoped(d.factory, "UniswapV2Factory", "uniswap-v2", "factory"),
        scoped(d.weth, "WETH9", "weth", "weth"),
        scoped(d.token_a, "Demo USD (DUSD)", "erc20", "token"),
        scoped(d.token_b, "Demo Token (DTKN)", "erc20", "token"),
        scoped(d.pair, "UniswapV2Pair DUSD/DTKN", "uniswap-v2", "pair"),
        scoped(market.weth_pair, "UniswapV2Pair WETH/DUSD", "uniswap-v2", "pair"),
    ]


def build_demo_allowlist(
    w3: Web3,
    market: DemoMarket,
    root: Path,
    *,
    on_step: Callable[[str], None] | None = None,
    reviewers: list | None = None,
    auditor=None,
    extra: list[Contract] | None = None,
) -> ActiveAllowlist:
    """Review the market's contracts (and `extra` ones) into `root`; reviewer and auditor
    keys are throwaway ones made here unless given (`devnet up` keeps them in keystores)."""
    reviewers = reviewers or [Account.create(), Account.create()]
    auditor = auditor or Account.create()
    write_trust_roots(root, reviewers, auditor)
    contracts = market_contracts(market) + list(extra or [])
    return review_contracts(
        w3, root, contracts, market.dex.chain_id, reviewers, auditor, on_step=on_step
    )


def review_contracts(
    w3: Web3,
    root: Path,
    contracts: list[Contract],
    chain_id: int,
    reviewers: list,
    auditor,
    *,
    on_step: Callable[[str], None] | None = None,
) -> ActiveAllowlist:
    """Each contract through the real workflow (audit, propose, triage, M-of-N approve)."""
    step = on_step or (lambda text: None)
    for address, name, role, sources, functions in contracts:
        step(f"vetting {name}" + (" (bytecode only: Mythril)" if sources is None else ""))
        # cast: an Address is checksummed by its validator
        code = w3.eth.get_code(cast(ChecksumAddress, address))
        codehash = "0x" + Web3.keccak(code).hex().removeprefix("0x")
        proposal = propose_entry(
            root,
            address,
            rpc=w3,
            name=name,
            role=role,
            sources=sources,
            audits=[_audit(root, auditor, name, chain_id, address, codehash)],
            functions=functions,
            notes="built by `defiagent demo` on a throwaway chain",
        )
        entry = proposal.entry
        if entry.slither is not None and entry.slither.failing:
            kept = json.loads(sidecar(proposal.entry_path, "slither.json").read_text())
            checks = {f.id: f.check for f in slither_findings(kept)}
            for finding in entry.slither.failing:
                reason = TRIAGE_REASONS.get(checks.get(finding, ""), GENERIC_REASON)
                triage_finding(proposal.entry_path, finding, reason, reviewers[0], root=root)
        for reviewer in reviewers:
            result = approve_entry(proposal.entry_path, reviewer, root=root)
        if not result.active:
            raise Refused(f"{name} did not become active after {len(reviewers)} approvals")
    step("verifying the allowlist")
    return load_active_allowlist(root, chain_id)
