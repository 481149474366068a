"""The CLI end to end: keystores, propose, approve twice, verify, vet, show, list, revoke.

Passwords come from an environment variable named on the command line, never the value.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import tomli_w
from eth_account import Account

from defiagent.cli.app import main
from defiagent.devchain import artifacts
from defiagent.signing.keystore import write_keystore
from tests.allowlist.support import CONTRACTS, DEMO_TOKEN, deploy, make_audit, make_root

pytestmark = pytest.mark.slow

PASSWORD_ENV = "DEFIAGENT_TEST_KEYSTORE_PASSWORD"


def run(capsys, *argv) -> tuple[int, dict | None]:
    code = main([*argv])
    out = capsys.readouterr().out
    try:
        return code, json.loads(out)
    except ValueError:
        return code, None


@pytest.fixture
def cli_world(tmp_path, keys, w3, anvil, monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, Account.create().key.hex())  # a throwaway password
    password = os.environ[PASSWORD_ENV]
    stores = {}
    for name, account in [
        ("r0", keys.reviewers[0]),
        ("r1", keys.reviewers[1]),
        ("auditor", keys.auditor),
    ]:
        stores[name] = tmp_path / "keys" / f"{name}.json"
        write_keystore(stores[name], bytes(account.key), password, light=True)
    root = make_root(tmp_path / "contracts_allowlist", keys)
    token = deploy(w3, _as_compiled(artifacts.demo_token()), "Demo USD", "DUSD", 10**27)
    codehash = w3.keccak(w3.eth.get_code(token.address)).to_0x_hex()
    audit = tmp_path / "audit.toml"
    unsigned = make_audit(keys.auditor, [codehash], sign=False)
    audit.write_text(tomli_w.dumps(unsigned.model_dump(mode="json", exclude_none=True)))
    return {
        "root": str(root),
        "url": anvil.url,
        "token": token.address,
        "keys": stores,
        "audit": audit,
    }


def _as_compiled(artifact):
    from defiagent.vetting.compiler import CompiledContract

    return CompiledContract(
        unit="x",
        name=artifact.name,
        abi=artifact.abi,
        runtime="",
        creation=artifact.bytecode.removeprefix("0x"),
    )


def test_review_workflow_from_the_command_line(capsys, cli_world):
    w = cli_world
    al = ["--allowlist", w["root"]]
    key = lambda name: ["--key", str(w["keys"][name]), "--password-env", PASSWORD_ENV]  # noqa: E731

    code, out = run(capsys, "allowlist", "sign-audit", str(w["audit"]), *key("auditor"), "--json")
    assert code == 0
    assert out["ok"]

    code, out = run(
        capsys,
        "allowlist",
        "propose",
        w["token"],
        "--rpc-url",
        w["url"],
        "--name",
        "Demo USD",
        "--role",
        "token",
        "--sources",
        str(DEMO_TOKEN.parent),
        "--audit",
        str(w["audit"]),
        "--max-approve",
        str(10**24),
        *al,
        "--json",
    )
    assert code == 0, out
    assert out["checks_pass"], [o for o in out["report"]["outcomes"] if o["status"] == "fail"]
    assert out["entry"].endswith(f"{w['token']}.toml")
    assert out["review_report"].endswith(".review.md")

    code, out = run(capsys, "allowlist", "list", *al, "--json")
    assert [e["status"] for e in out["entries"]] == ["pending"]

    code, out = run(capsys, "allowlist", "approve", w["token"], *key("r0"), *al, "--json")
    assert code == 0
    assert not out["active"]
    code, out = run(capsys, "allowlist", "approve", w["token"], *key("r1"), *al, "--json")
    assert code == 0
    assert out["active"]
    assert len(out["valid_approvals"]) == 2

    # Proposing again over an approved entry needs --replace (it would void the approvals).
    code, out = run(
        capsys,
        "allowlist",
        "propose",
        w["token"],
        "--rpc-url",
        w["url"],
        "--name",
        "x",
        *al,
        "--json",
    )
    assert code == 2
    assert "already exists with approvals" in out["error"]["message"]

    code, out = run(capsys, "allowlist", "verify", "--rpc-url", w["url"], *al, "--json")
    assert code == 0
    assert out["ok"]
    code, out = run(
        capsys,
        "vet",
        w["token"],
        "--rpc-url",
        w["url"],
        "--sources",
        str(DEMO_TOKEN.parent),
        *al,
        "--json",
    )
    assert code == 0
    assert out["report"]["passed"]
    code, out = run(capsys, "allowlist", "show", w["token"], *al, "--json")
    assert out["active"]
    assert out["entry"]["address"] == w["token"]

    # A hand edit voids the approvals: verify fails, list says invalid.
    entry_file = Path(out["path"])
    entry_file.write_text(
        entry_file.read_text().replace(f'value = "{10**24}"', f'value = "{10**30}"')
    )
    code, out = run(capsys, "allowlist", "verify", *al, "--json")
    assert code == 1
    assert not out["ok"]
    failing = [
        o["reason"]
        for e in out["report"]["entries"]
        for o in e["outcomes"]
        if o["status"] == "fail"
    ]
    assert any("edited after signing" in r for r in failing)
    code, out = run(capsys, "allowlist", "list", *al, "--json")
    assert out["entries"][0]["status"] == "invalid"

    code, out = run(
        capsys, "allowlist", "revoke", w["token"], "--reason", "cap widened by hand", *al, "--json"
    )
    assert code == 0
    code, out = run(capsys, "allowlist", "list", *al, "--json")
    assert out["entries"][0]["status"] == "revoked"


def test_vet_sources_exit_codes_and_reasons(capsys, tmp_path):
    code, out = run(
        capsys,
        "vet",
        str(CONTRACTS / "vulnerable" / "Reentrancy.sol"),
        "--allowlist",
        str(tmp_path),
        "--json",
    )
    assert code == 1
    assert not out["ok"]
    reasons = [o["reason"] for o in out["report"]["outcomes"] if o["status"] == "fail"]
    assert any(r.startswith("reentrancy-eth") for r in reasons)
    code, out = run(capsys, "vet", str(DEMO_TOKEN), "--allowlist", str(tmp_path), "--json")
    assert code == 0
    assert out["report"]["passed"]


def test_usage_and_infrastructure_errors(capsys, tmp_path, keys):
    code, out = run(capsys, "vet", "0x" + "11" * 20, "--json")
    assert code == 2
    assert "--rpc-url" in out["error"]["message"]
    make_root(tmp_path, keys)
    code, out = run(
        capsys,
        "allowlist",
        "verify",
        "--rpc-url",
        "http://127.0.0.1:9",
        "--allowlist",
        str(tmp_path),
        "--json",
    )
    assert code == 3
    assert out["error"]["kind"] == "infrastructure"
    code, _ = run(capsys, "vet", "--list-checks", "--json")
    assert code == 0


def test_wrong_keystore_password_is_refused(capsys, cli_world, monkeypatch):
    w = cli_world
    run(
        capsys,
        "allowlist",
        "propose",
        w["token"],
        "--rpc-url",
        w["url"],
        "--name",
        "t",
        "--role",
        "token",
        "--allowlist",
        w["root"],
        "--json",
    )
    monkeypatch.setenv(PASSWORD_ENV, "not the password")
    code, out = run(
        capsys,
        "allowlist",
        "approve",
        w["token"],
        "--key",
        str(w["keys"]["r0"]),
        "--password-env",
        PASSWORD_ENV,
        "--allowlist",
        w["root"],
        "--json",
    )
    assert code == 2
    assert "password" in out["error"]["message"]
