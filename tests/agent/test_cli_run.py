"""`defiagent run` and `defiagent dry-run` from a config file, against a local anvil that
stands in for mainnet, with an allowlist built by the real vetting workflow."""

from __future__ import annotations

import json
import os
import secrets
import sys

import pytest
import tomli_w
from eth_account import Account
from eth_account.typed_transactions import TypedTransaction
from hexbytes import HexBytes
from web3 import Web3

from defiagent.agent.demo_allowlist import build_demo_allowlist
from defiagent.agent.devnet import UNIT, deploy_market, fund
from defiagent.chain.anvil import Anvil
from defiagent.cli.app import main
from defiagent.monitoring.audit_log import verify_audit_log
from defiagent.signing.keystore import write_keystore

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("vetting")]
PASSWORD_ENV = "DEFIAGENT_TEST_KEYSTORE_PASSWORD"


# Written only from docs/strategy-protocol.md, without the SDK: plain JSON lines. On its
# first tick it asks for a swap of 2**256 (one past uint256: refused by the schema, and the
# agent goes on) and then an honest swap of 100 DTKN, quoted from the snapshot's reserves.
HONEST_ONCE = """
import json, sys

def send(message):
    sys.stdout.write(json.dumps(message) + "\\n")
    sys.stdout.flush()

hello = json.loads(sys.stdin.readline())
base, quote = hello["params"]["base"], hello["params"]["quote"]
send({"type": "ready", "protocol": 1, "description": "honest-once (written from the docs)"})
done = False
for line in sys.stdin:
    message = json.loads(line)
    if message["type"] == "stop":
        break
    intents = []
    if not done:
        done = True
        amount = 100 * 10**18
        for pool in message["market"]["pools"]:
            if {pool["token0"], pool["token1"]} == {base, quote}:
                r0, r1 = int(pool["reserve0"]), int(pool["reserve1"])
                r_in, r_out = (r0, r1) if pool["token0"] == base else (r1, r0)
                out = amount * 997 * r_out // (r_in * 1000 + amount * 997)
                intents = [
                    {"kind": "swap-exact-in", "token_in": base, "token_out": quote,
                     "amount_in": str(2**256), "min_amount_out": "1", "reason": "overflow"},
                    {"kind": "swap-exact-in", "token_in": base, "token_out": quote,
                     "amount_in": str(amount), "min_amount_out": str(out * 995 // 1000),
                     "reason": "test"},
                ]
    send({"type": "intents", "tick": message["tick"], "intents": intents})
"""
OPERATOR_PASSWORD_ENV = "DEFIAGENT_TEST_OPERATOR_PASSWORD"


@pytest.fixture(scope="module")
def mainnet(tmp_path_factory):
    # Blocks every second, as a real chain makes them (the TWAP reference needs time to pass).
    with Anvil(log_dir=tmp_path_factory.mktemp("mainnet"), block_time=1) as node:
        yield node


@pytest.fixture(scope="module")
def setup(mainnet, tmp_path_factory):
    """The market, a vetted allowlist, a funded keystore, and an agent.toml pointing at them."""
    w3 = Web3(Web3.HTTPProvider(mainnet.url))
    market = deploy_market(w3)
    home = tmp_path_factory.mktemp("agent-home")
    build_demo_allowlist(w3, market, home / "contracts_allowlist")
    password = secrets.token_urlsafe(16)
    address = write_keystore(
        home / "agent-key.json", bytes(Account.create().key), password, light=True
    )
    fund(w3, market, address, eth=10 * UNIT, dusd=10_000 * UNIT, dtkn=20_000 * UNIT)
    operator = write_keystore(
        home / "operator-key.json", bytes(Account.create().key), password, light=True
    )
    # The strategy lives in its own folder outside the package, as a user's would.
    (home / "strategies").mkdir()
    (home / "strategies" / "honest_once.py").write_text(HONEST_ONCE)
    d = market.dex
    config = {
        "rpc_url": mainnet.url,
        "chain_id": d.chain_id,
        "allowlist_dir": "contracts_allowlist",
        "state_dir": "state",
        "tick_seconds": 1,
        "protocols": {"router": d.router, "weth": d.weth, "factory": d.factory},
        "market": {"numeraire": d.token_a, "twap_min_window_seconds": 1},
        "strategy": {
            "name": "honest-once",
            "command": [sys.executable, "strategies/honest_once.py"],
            "params": {"base": d.token_b, "quote": d.token_a},
        },
        "signer": {"backend": "keystore", "path": "agent-key.json", "password_env": PASSWORD_ENV},
        "pin_signers": [operator],
        # These tests are about run itself; the certificate check is tests/backtest's.
        "require_backtest": False,
    }
    (home / "agent.toml").write_text(tomli_w.dumps(config))
    os.environ[OPERATOR_PASSWORD_ENV] = password
    try:
        pin = [
            "strategy",
            "pin",
            "-c",
            str(home / "agent.toml"),
            "--key",
            str(home / "operator-key.json"),
            "--password-env",
            OPERATOR_PASSWORD_ENV,
        ]
        assert main(pin) == 0
    finally:
        del os.environ[OPERATOR_PASSWORD_ENV]
    return {"w3": w3, "market": market, "home": home, "address": address, "password": password}


@pytest.fixture
def env(setup, monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, setup["password"])
    return setup


def test_dry_run_signs_for_a_private_chain_and_leaves_mainnet_alone(env, capsys):
    w3, home, address = env["w3"], env["home"], env["address"]
    nonce = w3.eth.get_transaction_count(address)
    balance = w3.eth.get_balance(address)
    code = main(
        [
            "dry-run",
            "--fork-url",
            w3.provider.endpoint_uri,
            "--config",
            str(home / "agent.toml"),
            "--ticks",
            "2",
            "--json",
        ]
    )
    doc = json.loads(capsys.readouterr().out)
    assert code == 0, doc
    assert doc["mode"] == "dry-run"
    assert doc["fork"]["private_chain_id"] != doc["fork"]["upstream_chain_id"]
    assert doc["totals"]["executed"] == 1, json.dumps(doc["ticks"], indent=1)[:3000]
    assert doc["totals"]["transactions"] == 2  # exact approve, then the swap
    # The 2**256 swap was refused by the schema, and the agent went on to the next.
    overflow, honest = doc["ticks"][0]["intents"]
    assert (overflow["status"], overflow["stage"]) == ("refused", "strategy")
    assert overflow["refusals"][0]["rule"] == "intent-schema"
    assert "amount_in" in overflow["refusals"][0]["reason"]
    assert honest["status"] == "executed"
    # Nothing reached the real chain, and nothing signed is valid on it.
    assert w3.eth.get_transaction_count(address) == nonce
    assert w3.eth.get_balance(address) == balance
    with open(doc["audit_log"]) as fh:
        records = [json.loads(line) for line in fh]
    raws = [r["payload"]["raw"] for r in records if r["kind"] == "execution.signed"]
    assert raws
    for raw in raws:
        assert bytes.fromhex(raw[2:])[0] == 2  # EIP-1559, chain id inside
        tx = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
        assert tx["chainId"] == doc["fork"]["private_chain_id"]
    assert verify_audit_log(doc["audit_log"]).ok


def test_run_trades_on_the_configured_chain(env, capsys):
    w3, home, address = env["w3"], env["home"], env["address"]
    nonce = w3.eth.get_transaction_count(address)
    code = main(["run", "--config", str(home / "agent.toml"), "--ticks", "1", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0, doc
    _, intent = doc["ticks"][0]["intents"]
    assert intent["status"] == "executed"
    assert w3.eth.get_transaction_count(address) == nonce + 2
    assert verify_audit_log(home / "state" / "audit.jsonl").ok


def test_run_refuses_with_the_kill_switch_on(env, capsys):
    home = env["home"]
    assert (
        main(["kill-switch", "on", "--reason", "drill", "--config", str(home / "agent.toml")]) == 0
    )
    try:
        assert main(["run", "--config", str(home / "agent.toml"), "--ticks", "1"]) == 1
        assert "kill switch is on" in capsys.readouterr().err
    finally:
        assert main(["kill-switch", "off", "--config", str(home / "agent.toml")]) == 0


def test_run_refuses_an_allowlist_that_does_not_verify(env, capsys):
    home = env["home"]
    entry = next((home / "contracts_allowlist").rglob("*.toml"))
    if entry.name in ("reviewers.toml", "policy.toml"):
        entry = next(p for p in (home / "contracts_allowlist").rglob("0x*.toml"))
    original = entry.read_text()
    entry.write_text(original.replace('name = "', 'name = "widened ', 1))  # voids the approvals
    try:
        assert main(["run", "--config", str(home / "agent.toml"), "--ticks", "1"]) == 1
        assert "not valid" in capsys.readouterr().err
    finally:
        entry.write_text(original)


def test_bad_config_is_one_sentence_exit_2(env, tmp_path, capsys):
    bad = tmp_path / "agent.toml"
    bad.write_text(
        (env["home"] / "agent.toml").read_text().replace("tick_seconds = 1", "tick_seconds = -1")
    )
    assert main(["run", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "tick_seconds" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("backend", ["ledger", "kms"])
def test_dry_run_runs_unchanged_with_a_ledger_or_a_kms_signer(env, backend, capsys, monkeypatch):
    """The same config, only [signer] changed: the Ledger through ledgerblue's real TCP
    transport to the real Ethereum app in Speculos (blind signing on, a person approving),
    KMS through real boto3 calls to a local KMS."""
    import tomllib
    from contextlib import ExitStack

    w3, home = env["w3"], env["home"]
    config = tomllib.loads((home / "agent.toml").read_text())
    with ExitStack() as stack:
        if backend == "ledger":
            import ledgerblue.comm
            import ledgereth.comms
            from eth_account.hdaccount import generate_mnemonic
            from eth_account.types import Language

            from defiagent.signing.testing.speculos import AutoApprover, Speculos

            mnemonic = generate_mnemonic(12, Language.ENGLISH)
            device = stack.enter_context(Speculos(mnemonic, log_dir=home / "speculos"))
            device.set_blind_signing(True)  # the approve and the swap are contract calls
            approver = stack.enter_context(AutoApprover(device))
            # What LEDGER_PROXY_ADDRESS/PORT select when set before ledgerblue is imported.
            monkeypatch.setattr(ledgerblue.comm, "TCP_PROXY", (device.host, device.apdu_port))
            monkeypatch.setattr(ledgereth.comms, "DONGLE_CACHE", None)
            monkeypatch.setattr(ledgereth.comms, "DONGLE_CONFIG_CACHE", None)
            config["signer"] = {"backend": "ledger"}
        else:
            from defiagent.signing.testing.moto_kms import LocalKms

            monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
            monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
            kms = stack.enter_context(LocalKms("us-east-1"))
            config["signer"] = {
                "backend": "kms",
                "key_id": kms.create_key(),
                "region": "us-east-1",
                "endpoint_url": kms.endpoint_url,
            }
        config["state_dir"] = f"state-{backend}"
        path = home / f"agent-{backend}.toml"
        path.write_text(tomli_w.dumps(config))

        assert main(["signer", "address", "--config", str(path), "--json"]) == 0
        address = Web3.to_checksum_address(json.loads(capsys.readouterr().out)["address"])
        fund(w3, env["market"], address, eth=10 * UNIT, dusd=10_000 * UNIT, dtkn=20_000 * UNIT)
        nonce = w3.eth.get_transaction_count(address)

        code = main(
            [
                "dry-run",
                "--fork-url",
                w3.provider.endpoint_uri,
                "--config",
                str(path),
                "--ticks",
                "2",
                "--json",
            ]
        )
        doc = json.loads(capsys.readouterr().out)
    assert code == 0, doc
    assert doc["totals"]["executed"] == 1, json.dumps(doc["ticks"], indent=1)[:3000]
    assert doc["totals"]["transactions"] == 2
    assert w3.eth.get_transaction_count(address) == nonce  # the real chain saw nothing
    with open(doc["audit_log"]) as fh:
        raws = [r["payload"]["raw"] for r in map(json.loads, fh) if r["kind"] == "execution.signed"]
    assert raws
    for raw in raws:  # signed by this backend's key, for the fork's private chain
        assert Account.recover_transaction(raw) == address
    if backend == "ledger":  # each one reviewed and approved on the device, blind signed
        signed = [r for r in approver.reviews if r.screens[0] == ["Review", "transaction"]]
        assert [r.outcome for r in signed] == ["approved"] * len(raws)
        assert all(["Blind", "Signing"] in r.screens for r in signed)


@pytest.mark.parametrize("change", ["code", "params"])
def test_run_refuses_a_strategy_changed_since_it_was_pinned(env, capsys, change):
    home = env["home"]
    code = home / "strategies" / "honest_once.py"
    config = home / "agent.toml"
    original_code, original_config = code.read_text(), config.read_text()
    if change == "code":  # one byte
        code.write_text(original_code.replace("amount = 100 *", "amount = 900 *"))
    else:  # one character of one param
        config.write_text(original_config.replace('base = "0x', 'base = "0X', 1))
    try:
        assert main(["run", "--config", str(config), "--ticks", "1"]) == 1
        err = capsys.readouterr().err
        assert "since it was pinned" in err
        assert ("honest_once.py" in err) if change == "code" else ("base changed" in err)
        assert "Traceback" not in err
    finally:
        code.write_text(original_code)
        config.write_text(original_config)
    assert main(["strategy", "verify", "-c", str(config)]) == 0


def test_dry_run_prints_the_rules_only_with_verbose(env, capsys):
    argv = [
        "dry-run",
        "--fork-url",
        env["w3"].provider.endpoint_uri,
        "--config",
        str(env["home"] / "agent.toml"),
        "--ticks",
        "1",
    ]
    assert main(argv) == 0
    quiet = capsys.readouterr()
    assert "MaxDailyLoss" not in quiet.err  # the rules table is for --verbose
    assert "audit log:" in quiet.out
    assert main([*argv, "--verbose"]) == 0
    assert "MaxDailyLoss: pause all trading" in capsys.readouterr().err
