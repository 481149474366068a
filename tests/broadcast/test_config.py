"""[broadcast] in agent.toml: consistent settings only, and the relay held to the TLS rule
(literal URLs when the config is read, references when they are resolved at start)."""

from __future__ import annotations

import pytest

from defiagent.cli.app import main
from defiagent.config import parse_config
from defiagent.errors import ConfigError
from defiagent.secrets.agent import prepare_agent_secrets

A = "0x" + "11" * 20
B = "0x" + "22" * 20
BASE = {
    "rpc_url": "http://127.0.0.1:8545",
    "chain_id": 1,
    "protocols": {"router": A, "weth": B},
    "signer": {"backend": "keystore", "path": "k.json", "password_env": "X"},
}


def cfg(**broadcast):
    return parse_config(BASE | {"broadcast": broadcast})


@pytest.mark.parametrize(
    "url",
    ["https://rpc.flashbots.net/fast", "http://127.0.0.1:8600", "http://localhost:1", "env:RELAY"],
)
def test_accepted_relay_urls(url):
    assert cfg(mode="private", relay_url=url).broadcast.relay_url == url


@pytest.mark.parametrize(
    ("broadcast", "why"),
    [
        ({"mode": "private", "relay_url": "http://relay.example"}, "not loopback"),
        ({"mode": "private", "relay_url": "http://10.0.0.5:8545"}, "not loopback"),
        ({"mode": "private", "relay_url": "ftp://relay.example"}, "http"),
        ({"mode": "private"}, "needs relay_url"),
        ({"mode": "public", "relay_url": "https://relay.example"}, "would be ignored"),
        ({"mode": "public", "fallback": "public"}, "only to mode"),
        ({"mode": "private", "relay_url": "https://r.example", "fallback": "mempool"}, "fallback"),
        ({"mode": "private", "relay_url": "https://r.example", "max_blocks": 0}, "max_blocks"),
        ({"mode": "stealth"}, "mode"),
    ],
)
def test_refused_with_the_field_named(broadcast, why):
    with pytest.raises(ConfigError, match="broadcast") as info:
        cfg(**broadcast)
    assert why in str(info.value)
    assert info.value.exit_code == 2


def test_defaults_are_public_with_no_fallback():
    b = parse_config(BASE).broadcast
    assert (b.mode, b.fallback, b.max_blocks, b.relay_url) == ("public", "none", 25, None)


def test_a_reference_to_a_plain_http_relay_is_refused_at_start(monkeypatch):
    monkeypatch.setenv("RELAY_URL_T", "http://relay.example/key-4fj29Xq")
    config = cfg(mode="private", relay_url="env:RELAY_URL_T")  # a reference loads...
    with pytest.raises(ConfigError, match=r"broadcast.relay_url .*not loopback") as info:
        prepare_agent_secrets(config)  # ...and is checked once resolved
    assert info.value.exit_code == 2
    assert "key-4fj29Xq" not in str(info.value)


def test_a_resolved_relay_reference_is_used_and_never_logged(monkeypatch):
    monkeypatch.setenv("RELAY_URL_T", "https://relay.example/key-4fj29Xq")
    ready = prepare_agent_secrets(cfg(mode="private", relay_url="env:RELAY_URL_T"))
    assert ready.broadcast.relay_url == "https://relay.example/key-4fj29Xq"
    assert "key-4fj29Xq" not in str(ready.redacted())


def test_run_refuses_to_start_on_a_plain_http_relay(tmp_path, capsys):
    (tmp_path / "agent.toml").write_text(
        f'rpc_url = "http://127.0.0.1:9"\nchain_id = 1\n'
        f'[protocols]\nrouter = "{A}"\nweth = "{B}"\n'
        '[signer]\nbackend = "keystore"\npath = "k.json"\npassword_env = "X"\n'
        '[broadcast]\nmode = "private"\nrelay_url = "http://relay.example"\n'
    )
    assert main(["run", "--config", str(tmp_path / "agent.toml"), "--ticks", "1"]) == 2
    err = capsys.readouterr().err
    assert "broadcast.relay_url" in err
    assert "not loopback" in err
    assert "Traceback" not in err


def test_a_dry_run_never_sends_to_the_real_relay():
    from defiagent.agent.runtime import AgentRuntime

    class Audit:
        def __init__(self):
            self.events = []

        def record(self, kind, payload):
            self.events.append((kind, payload))

    private = cfg(mode="private", relay_url="https://relay.example")
    runtime = AgentRuntime(private, rpc_url="http://127.0.0.1:9", mode="dry-run")
    runtime.audit = Audit()
    assert runtime._build_submitter() is None  # the executor's public path, to the fork
    assert runtime.audit.events == [
        ("broadcast", {"mode": "public", "why": "dry-run: the fork only"})
    ]


def test_the_relay_identity_key_is_a_reference_read_at_start(monkeypatch):
    from defiagent.broadcast import PrivateSubmitter
    from defiagent.chain.rpc import JsonRpcClient

    key = "0x" + "ab" * 32
    with pytest.raises(ConfigError, match="secret reference"):  # never the key in the file
        cfg(mode="private", relay_url="https://r.example", auth_key_ref=key)
    with pytest.raises(ConfigError, match="only to mode"):
        cfg(mode="public", auth_key_ref="env:RELAY_KEY_T")
    monkeypatch.setenv("RELAY_KEY_T", "not-a-key-Zq81")
    bad = cfg(mode="private", relay_url="https://r.example", auth_key_ref="env:RELAY_KEY_T")
    with pytest.raises(ConfigError, match="does not hold a secp256k1") as info:
        PrivateSubmitter.from_config(bad.broadcast, JsonRpcClient("http://127.0.0.1:9"))
    assert "not-a-key-Zq81" not in str(info.value)
    monkeypatch.delenv("RELAY_KEY_T")
    with pytest.raises(Exception, match="RELAY_KEY_T") as missing:  # missing: exit 3 at start
        prepare_agent_secrets(bad)
    assert missing.value.exit_code == 3
