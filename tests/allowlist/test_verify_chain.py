"""`allowlist verify --rpc-url` against a chain the entries are not for is a failure, not a
green run with every on-chain check skipped."""

from __future__ import annotations

import json

import pytest
from eth_utils import keccak

from defiagent.cli.app import main
from tests.allowlist.support import approved_entry, compiled, contract, deploy

pytestmark = pytest.mark.slow

MAINNET_ROUTER = "0x7a250d5630B4cF539739dF2C5dAcb4c659F2488D"


def run(capsys, *argv) -> tuple[int, dict | None, str]:
    code = main([*argv])
    captured = capsys.readouterr()
    try:
        return code, json.loads(captured.out), captured.err
    except ValueError:
        return code, None, captured.out + captured.err


def _mainnet_entry(root, keys) -> None:
    approved_entry(
        root,
        keys,
        chain_id=1,
        address=MAINNET_ROUTER,
        codehash="0x" + "ab" * 32,
        name="Router on mainnet",
    )


def test_verify_against_an_rpc_of_another_chain_fails_naming_both(capsys, anvil, root, keys):
    _mainnet_entry(root, keys)
    # Offline, the signatures hold: exit 0.
    code, out, _ = run(capsys, "allowlist", "verify", "--allowlist", str(root), "--json")
    assert code == 0
    assert out["ok"] is True

    # Against a chain the entries are not for, nothing could be checked on chain: exit 1.
    code, out, _ = run(
        capsys, "allowlist", "verify", "--allowlist", str(root), "--rpc-url", anvil.url, "--json"
    )
    assert code == 1
    assert out["ok"] is False
    problems = out["report"]["problems"]
    assert len(problems) == 1
    assert "chain 31337" in problems[0]
    assert "chain 1" in problems[0]
    assert problems[0].count(". ") == 0, "one sentence"

    # Without --json, the sentence is printed and the verdict is a failure.
    code, _, text = run(
        capsys, "allowlist", "verify", "--allowlist", str(root), "--rpc-url", anvil.url
    )
    assert code == 1
    assert "chain 31337" in text
    assert "chain 1" in text
    assert "allowlist FAILS" in text


def test_verify_against_the_entries_chain_still_passes(capsys, anvil, w3, root, keys):
    c = compiled("vulnerable/SelfdestructAnyone.sol")
    target = deploy(w3, contract(c, "Killable"))
    approved_entry(
        root,
        keys,
        chain_id=w3.eth.chain_id,
        address=target.address,
        codehash="0x" + keccak(w3.eth.get_code(target.address)).hex(),
    )
    code, out, _ = run(
        capsys, "allowlist", "verify", "--allowlist", str(root), "--rpc-url", anvil.url, "--json"
    )
    assert code == 0, out
    assert out["report"]["problems"] == []
    assert all(e["checked_on_chain"] for e in out["report"]["entries"])
