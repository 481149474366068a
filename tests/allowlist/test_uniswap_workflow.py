"""The whole review workflow on the real Uniswap V2 stack, WETH9 and OpenZeppelin tokens.

propose (vet: code, proxies, sources, Slither, audits) -> triage the Slither findings of
audited Uniswap code -> two reviewers approve -> the agent loads the active allowlist ->
verify against the chain.
"""

from __future__ import annotations

import pytest
from web3 import Web3

from defiagent.allowlist.functions import selector
from defiagent.allowlist.models import ConstraintKind, Role
from defiagent.allowlist.policy import load_policy
from defiagent.allowlist.reviewers import load_reviewers
from defiagent.allowlist.store import load_active_allowlist
from defiagent.allowlist.verify import verify_allowlist
from defiagent.allowlist.workflow import approve_entry, propose_entry, triage_finding
from defiagent.chain.anvil import Anvil
from defiagent.devchain.deploy import create_pool, deploy_uniswap_v2
from defiagent.errors import Refused
from defiagent.toolchain import solc_versions
from tests.allowlist.support import (
    UNISWAP_TRIAGE_REASONS,
    Keys,
    make_audit,
    make_root,
    uniswap_bundle,
)

pytestmark = pytest.mark.slow

SWAP = "swapExactTokensForTokens(uint256,uint256,address[],address,uint256)"


class Stack:
    pass


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Deploy, propose, triage and approve every contract of the stack, once."""
    keys = Keys()
    with Anvil(log_dir=tmp_path_factory.mktemp("anvil")) as node:
        w3 = Web3(Web3.HTTPProvider(node.url))
        d = create_pool(w3, deploy_uniswap_v2(w3), 10**24, 2 * 10**24)
        root = make_root(tmp_path_factory.mktemp("allowlist") / "contracts_allowlist", keys)
        s = Stack()
        s.keys, s.root, s.url, s.w3, s.d = keys, root, node.url, w3, d
        s.proposals, s.paths = {}, {}
        specs = [
            ("router", d.router, "Uniswap V2 Router02", Role.ROUTER),
            ("pair", d.pair, "Uniswap V2 Pair DUSD/DTKN", Role.POOL),
            ("factory", d.factory, "Uniswap V2 Factory", Role.FACTORY),
            ("weth", d.weth, "WETH9", Role.WRAPPED_NATIVE),
            ("token", d.token_a, "Demo USD", Role.TOKEN),
            ("token_b", d.token_b, "Demo Token", Role.TOKEN),
        ]
        for key, address, name, role in specs:
            codehash = Web3.keccak(w3.eth.get_code(address)).to_0x_hex()
            policy = None
            if key == "weth" and "0.5.0" not in solc_versions():
                # canonical WETH9 was built with solc 0.5.0, not in the toolchain: its sources
                # cannot be bound to its code here. The operator accepts it on its audit (bound
                # to the codehash) and Slither over the published sources, and says so.
                base = load_policy(root)
                policy = base.model_copy(
                    update={"sources": base.sources.model_copy(update={"min_match": "none"})}
                )
            proposal = propose_entry(
                root,
                address,
                rpc=node.url,
                name=name,
                role=role,
                sources=uniswap_bundle("token" if key == "token_b" else key),
                audits=[make_audit(keys.auditor, [codehash])],
                max_approve=10**24 if role in (Role.TOKEN, Role.WRAPPED_NATIVE) else None,
                policy=policy,
            )
            s.proposals[key], s.paths[key] = proposal, proposal.entry_path
            gate = proposal.report.slither
            for finding in gate.blocking:
                triage_finding(
                    proposal.entry_path,
                    finding.id,
                    UNISWAP_TRIAGE_REASONS[finding.check],
                    keys.reviewers[0],
                )
            for reviewer in keys.reviewers[:2]:
                approve_entry(proposal.entry_path, reviewer, root=root)
        yield s


def test_proposals_report_what_was_found(stack):
    levels = {k: p.report.units[0].source_match.level for k, p in stack.proposals.items()}
    assert levels["pair"] == "full"
    assert levels["token"] == "full"
    assert levels["factory"] == "partial"
    assert levels["router"] == "partial"
    assert levels["weth"] == ("partial" if "0.5.0" in solc_versions() else "mismatch")
    # Real, audited Uniswap V2 code is flagged by Slither: only signed triage lets it through.
    assert {f.check for f in stack.proposals["pair"].report.slither.blocking} >= {
        "weak-prng",
        "reentrancy-no-eth",
    }
    assert not stack.proposals["token"].report.slither.failing
    for key, proposal in stack.proposals.items():
        failing = {o.check for o in proposal.report.failures()}
        assert failing <= {"slither-gate"}, (key, [o.reason for o in proposal.report.failures()])
        assert proposal.report_path.read_text().startswith("# Review: ")


def test_the_agent_loads_all_six_entries(stack):
    active = load_active_allowlist(stack.root, stack.d.chain_id)
    assert set(active.entries) == {
        stack.d.router,
        stack.d.pair,
        stack.d.factory,
        stack.d.weth,
        stack.d.token_a,
        stack.d.token_b,
    }
    assert active.is_token(stack.d.weth)
    assert active.is_token(stack.d.token_a)
    assert not active.is_token(stack.d.router)
    router = active.get(stack.d.router.lower())
    swap = router.function(selector(SWAP))
    kinds = {(c.arg, c.kind) for c in swap.constraints}
    assert kinds == {
        ("path", ConstraintKind.IN_TOKEN_ALLOWLIST),
        ("to", ConstraintKind.EQUALS_SELF),
    }
    weth = active.get(stack.d.weth)
    if "0.5.0" in solc_versions():  # sources matched: argument names come from WETH9's ABI
        spender, amount = "guy", "wad"
    else:  # no matched ABI: the defaults, and the review report says so
        spender, amount = "spender", "amount"
        assert any("no ABI" in n for n in stack.proposals["weth"].notes)
    assert {f.signature for f in weth.functions} == {
        "deposit()",
        "withdraw(uint256 wad)",
        f"approve(address {spender},uint256 {amount})",
    }
    approve = weth.function(selector("approve(address,uint256)"))
    assert {(c.arg, c.kind, c.value) for c in approve.constraints} == {
        (spender, ConstraintKind.IN_ALLOWLIST, None),
        (amount, ConstraintKind.MAX_AMOUNT, str(10**24)),
    }
    token = active.get(stack.d.token_a)  # ABI known (full match): OpenZeppelin's names
    assert [f.signature for f in token.functions] == ["approve(address spender,uint256 value)"]
    assert active.get(stack.d.pair).functions == []  # a pool is read, never called


def test_verify_on_chain_passes(stack):
    report = verify_allowlist(stack.root, stack.url)
    assert report.passed, [
        (e.path, [o.reason for o in e.outcomes if o.status == "fail"]) for e in report.entries
    ]
    assert all(e.checked_on_chain for e in report.entries)


def test_reviewers_cannot_sign_what_fails_its_checks(stack, tmp_path):
    # A fresh proposal of the pair, without triage: approving it is refused, with the reason.
    proposal = propose_entry(
        tmp_path,
        stack.d.pair,
        rpc=stack.url,
        name="pair again",
        role=Role.POOL,
        sources=uniswap_bundle("pair"),
        audits=[make_audit(stack.keys.auditor, [stack.proposals["pair"].entry.codehash])],
        policy=load_policy(stack.root),
        reviewers=None,
    )
    (tmp_path / "reviewers.toml").write_text((stack.root / "reviewers.toml").read_text())
    (tmp_path / "policy.toml").write_text((stack.root / "policy.toml").read_text())
    with pytest.raises(Refused, match="above the threshold and not triaged"):
        approve_entry(proposal.entry_path, stack.keys.reviewers[0], root=tmp_path)


def test_revetting_an_approved_contract_is_instant(stack):
    import time

    from defiagent.allowlist.tomlio import read_entry
    from defiagent.vetting.vet import vet_address

    entry = read_entry(stack.paths["router"])
    started = time.perf_counter()
    common = {
        "policy": load_policy(stack.root),
        "reviewers": load_reviewers(stack.root),
        "entry": entry,
    }
    vetting = vet_address(stack.url, stack.d.router, sources=uniswap_bundle("router"), **common)
    elapsed = time.perf_counter() - started
    assert vetting.report.passed, [o.reason for o in vetting.report.failures()]
    assert elapsed < 2.0, elapsed
    # Without sources: the Slither result cached for this codehash is reused.
    vetting = vet_address(stack.url, stack.d.router, **common)
    assert vetting.report.passed
    assert "cached for this codehash" in vetting.report.slither_note


def test_vet_on_another_machine_judges_the_recorded_result(stack, tmp_path, monkeypatch):
    from defiagent.allowlist.tomlio import read_entry
    from defiagent.vetting.vet import vet_address

    monkeypatch.setenv("DEFIAGENT_CACHE_DIR", str(tmp_path / "empty-cache"))
    entry = read_entry(stack.paths["pair"])
    vetting = vet_address(
        stack.url,
        stack.d.pair,
        policy=load_policy(stack.root),
        reviewers=load_reviewers(stack.root),
        entry=entry,
    )
    assert vetting.report.passed, [o.reason for o in vetting.report.failures()]
    by_check = {o.check: o.reason for o in vetting.report.outcomes}
    assert by_check["source-match"].startswith("full match, as recorded in the entry")
    assert by_check["slither-gate"].startswith("recorded Slither result")
