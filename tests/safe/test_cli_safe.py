"""`defiagent safe status | sync-guard` against a real Safe: exit 1 out of sync, the diff, the
M-of-N sync through the CLI's own steps, then exit 0; bad usage is exit 2, never a traceback."""

from __future__ import annotations

import json

import pytest
import tomli_w
from eth_account import Account

from defiagent.agent import allowlist_source
from defiagent.cli.app import main
from defiagent.signing.keystore import write_keystore

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("safe-cli")]


@pytest.fixture
def home(tmp_path, chain, market, deployment, monkeypatch):
    config = {
        "rpc_url": chain.url,
        "chain_id": market.dex.chain_id,
        "allowlist_dir": str(tmp_path / "allowlist"),
        "state_dir": str(tmp_path / "state"),
        "protocols": {"router": market.dex.router, "weth": market.dex.weth},
        "signer": {"backend": "keystore", "path": str(tmp_path / "unused.json")},
        "safe": {
            "address": deployment.safe,
            "guard": deployment.guard,
            "multi_send": deployment.infra.multi_send,
        },
    }
    (tmp_path / "agent.toml").write_text(tomli_w.dumps(config))
    return tmp_path


def _use(monkeypatch, allowlist):
    # The allowlist folder's signatures are tested in tests/allowlist; here its content.
    monkeypatch.setattr(allowlist_source, "load_allowlist", lambda root, chain_id: allowlist)


def _keystore(path, account, monkeypatch, env="SAFE_TEST_PW"):
    write_keystore(path, bytes(account.key), "pw-" + env, light=True)
    monkeypatch.setenv(env, "pw-" + env)
    return str(path)


def test_status_exits_1_out_of_sync_and_0_after_the_owners_sync(
    home, market, deployment, safe_allowlist, owners, signer, monkeypatch, capsys
):
    cfg = str(home / "agent.toml")
    _use(monkeypatch, safe_allowlist)
    assert main(["safe", "status", "-c", cfg, "--agent", signer.address]) == 0
    capsys.readouterr()

    entries = dict(safe_allowlist.entries)
    entries[market.dtkn] = entries[market.dtkn].model_copy(update={"revoked": True})
    _use(monkeypatch, safe_allowlist.model_copy(update={"entries": entries}))
    assert main(["safe", "status", "-c", cfg, "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False
    assert f"- token {market.dtkn}" in out["diff"]
    assert any("sync-guard" in p for p in out["problems"])

    assert main(["safe", "sync-guard", "-c", cfg, "--json"]) == 0
    proposed = json.loads(capsys.readouterr().out)
    assert proposed["in_sync"] is False
    assert f"- token {market.dtkn}" in proposed["diff"]
    keys = [
        _keystore(home / f"owner{i}.json", o, monkeypatch, f"PW{i}") for i, o in enumerate(owners)
    ]
    payer = _keystore(
        home / "payer.json", Account.from_key(signer._account.key), monkeypatch, "PWP"
    )
    execute = [
        "safe",
        "sync-guard",
        "-c",
        cfg,
        "--execute",
        "--key",
        payer,
        "--password-env",
        "PWP",
    ]
    assert (
        main(
            [
                "safe",
                "sync-guard",
                "-c",
                cfg,
                "--approve",
                "--key",
                keys[0],
                "--password-env",
                "PW0",
            ]
        )
        == 0
    )
    assert main(execute) == 1  # one of two owners
    assert "1 valid owner signature(s)" in capsys.readouterr().err
    assert (
        main(
            [
                "safe",
                "sync-guard",
                "-c",
                cfg,
                "--approve",
                "--key",
                keys[1],
                "--password-env",
                "PW1",
            ]
        )
        == 0
    )
    assert main(execute) == 0
    assert main(["safe", "status", "-c", cfg]) == 0
    capsys.readouterr()

    # Put the guard back for the other tests of this module.
    _use(monkeypatch, safe_allowlist)
    assert main(["safe", "sync-guard", "-c", cfg]) == 0
    for i, key in enumerate(keys):
        assert (
            main(
                [
                    "safe",
                    "sync-guard",
                    "-c",
                    cfg,
                    "--approve",
                    "--key",
                    key,
                    "--password-env",
                    f"PW{i}",
                ]
            )
            == 0
        )
    assert main(execute) == 0
    assert main(["safe", "status", "-c", cfg]) == 0


def test_bad_usage_is_one_sentence_and_exit_2(home, safe_allowlist, monkeypatch, capsys):
    _use(monkeypatch, safe_allowlist)
    cfg = str(home / "agent.toml")
    assert main(["safe", "sync-guard", "-c", cfg, "--approve"]) == 2
    err = capsys.readouterr().err
    assert "need --key" in err
    assert "Traceback" not in err
    assert main(["safe", "status", "-c", cfg, "--agent", "0xnot-an-address"]) == 2
    assert "--agent" in capsys.readouterr().err


def test_deploy_then_owners_sync_then_status_through_the_cli(
    tmp_path, chain, market, safe_allowlist, owners, signer, monkeypatch, capsys
):
    _use(monkeypatch, safe_allowlist)
    payer = _keystore(
        tmp_path / "payer.json", Account.from_key(signer._account.key), monkeypatch, "PWP"
    )
    keys = [
        _keystore(tmp_path / f"o{i}.json", o, monkeypatch, f"PW{i}") for i, o in enumerate(owners)
    ]
    config = {
        "rpc_url": chain.url,
        "chain_id": market.dex.chain_id,
        "allowlist_dir": str(tmp_path / "allowlist"),
        "state_dir": str(tmp_path / "state"),
        "protocols": {"router": market.dex.router, "weth": market.dex.weth},
        "signer": {"backend": "keystore", "path": str(tmp_path / "unused.json")},
    }
    cfg = tmp_path / "agent.toml"
    cfg.write_text(tomli_w.dumps(config))
    base = ["safe", "deploy", "-c", str(cfg), "--key", payer, "--password-env", "PWP"]
    base += ["--agent", signer.address, "--threshold", "2"]
    base += [a for o in owners for a in ("--owner", o.address)]
    assert main(base) == 1  # no canonical Safe 1.4.1 on this chain, and no --dev-infra
    assert "--dev-infra" in capsys.readouterr().err
    assert main([*base, "--owner", signer.address, "--dev-infra"]) == 2  # the agent as owner
    assert "must not be an owner" in capsys.readouterr().err
    assert main([*base, "--dev-infra", "--json"]) == 0
    deployed = json.loads(capsys.readouterr().out)
    config["safe"] = {
        "address": deployed["safe"],
        "guard": deployed["guard"],
        "multi_send": deployed["infra"]["multi_send"],
    }
    cfg.write_text(tomli_w.dumps(config))
    assert main(["safe", "status", "-c", str(cfg)]) == 1  # not enabled, no rules yet
    assert "not an enabled module" in capsys.readouterr().out
    for i, key in enumerate(keys):
        approve = ["safe", "sync-guard", "-c", str(cfg), "--approve", "--key", key]
        assert main([*approve, "--password-env", f"PW{i}"]) == 0
    execute = ["safe", "sync-guard", "-c", str(cfg), "--execute", "--key", payer]
    assert main([*execute, "--password-env", "PWP"]) == 0
    assert main(["safe", "status", "-c", str(cfg), "--agent", signer.address]) == 0
    capsys.readouterr()
    assert main(["safe", "sync-guard", "-c", str(cfg), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["in_sync"] is True


def test_an_rpc_that_does_not_answer_is_exit_3_without_its_url(tmp_path, capsys):
    config = {
        "rpc_url": "http://127.0.0.1:9/v3/secret-api-key",
        "chain_id": 31337,
        "allowlist_dir": str(tmp_path / "allowlist"),
        "state_dir": str(tmp_path / "state"),
        "protocols": {"router": Account.create().address, "weth": Account.create().address},
        "signer": {"backend": "keystore", "path": str(tmp_path / "unused.json")},
        "safe": {"address": Account.create().address, "guard": Account.create().address},
    }
    (tmp_path / "agent.toml").write_text(tomli_w.dumps(config))
    assert main(["safe", "status", "-c", str(tmp_path / "agent.toml")]) == 3
    captured = capsys.readouterr()
    assert "secret-api-key" not in captured.err + captured.out
    assert "Traceback" not in captured.err
