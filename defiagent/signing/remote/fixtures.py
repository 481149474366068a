"""A signed allowlist folder for a devnet market, made in a second: for tests and the bench.

The entries carry what a real review produces (a signed audit of the runtime code, a
Slither summary bound to it, two reviewer signatures, the scopes the planner needs), made
with throwaway keys; the compiler and Slither are not run. The demo runs the real review
workflow instead (defiagent/agent/demo_allowlist.py). Never for a real chain.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import tomli_w
from eth_account import Account

from defiagent.agent import scopes
from defiagent.agent.devnet import DemoMarket
from defiagent.agent.observe import codehash
from defiagent.allowlist.models import (
    AllowlistEntry,
    AuditedContract,
    AuditorInfo,
    AuditRecord,
    Role,
    SlitherSummary,
)
from defiagent.allowlist.store import entry_path
from defiagent.allowlist.tomlio import write_entry
from defiagent.allowlist.workflow import approve_entry
from defiagent.vetting.audits import sign_audit


def market_contracts(market: DemoMarket) -> list[tuple[str, str, Role, list[Any]]]:
    d = market.dex
    assert d.pair is not None  # deploy_market made the pool
    return [
        (d.router, "UniswapV2Router02", Role.ROUTER, scopes.router_functions()),
        (d.factory, "UniswapV2Factory", Role.FACTORY, []),
        (d.weth, "WETH9", Role.WRAPPED_NATIVE, scopes.weth_functions()),
        (d.token_a, "Demo USD (DUSD)", Role.TOKEN, scopes.token_functions()),
        (d.token_b, "Demo Token (DTKN)", Role.TOKEN, scopes.token_functions()),
        (d.pair, "UniswapV2Pair DUSD/DTKN", Role.POOL, scopes.pair_functions()),
        (market.weth_pair, "UniswapV2Pair WETH/DUSD", Role.POOL, scopes.pair_functions()),
    ]


def write_signed_allowlist(
    w3: Any, root: Path, chain_id: int, contracts: list[tuple[str, str, Role, list[Any]]]
) -> Path:
    reviewers = [Account.create(), Account.create()]
    auditor = Account.create()
    root.mkdir(parents=True, exist_ok=True)
    (root / "reviewers.toml").write_text(
        tomli_w.dumps(
            {
                "threshold": 2,
                "reviewers": [
                    {"name": f"r{i}", "address": r.address} for i, r in enumerate(reviewers)
                ],
            }
        )
    )
    (root / "policy.toml").write_text(
        tomli_w.dumps(
            {
                "audits": {
                    "trusted_auditors": [{"name": "Throwaway Audits", "address": auditor.address}],
                    "require_auditor_signature": True,
                }
            }
        )
    )
    for address, name, role, functions in contracts:
        code_hash = codehash(w3.eth.get_code(address).to_0x_hex())
        audit = AuditRecord(
            auditor=AuditorInfo(name="Throwaway Audits", address=auditor.address),
            issued_at=datetime.now(UTC).date(),
            report_uri="https://audits.invalid/report.pdf",
            report_sha256="ab" * 32,
            contracts=[
                AuditedContract(chain_id=chain_id, address=address, runtime_codehash=code_hash)
            ],
        )
        entry = AllowlistEntry(
            chain_id=chain_id,
            address=address,
            name=name,
            role=role,
            codehash=code_hash,
            functions=functions,
            audits=[sign_audit(audit, auditor)],
            slither=SlitherSummary(
                slither_version="0.11.6", codehash=code_hash, source_match="full"
            ),
        )
        path = entry_path(root, chain_id, address)
        write_entry(path, entry)
        for reviewer in reviewers:
            approve_entry(path, reviewer, root=root)
    return root
