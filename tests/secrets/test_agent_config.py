"""Every configured secret as a reference, resolved at start from a real OpenBao and moto."""

from __future__ import annotations

import contextlib

import pytest

from defiagent.config import parse_config
from defiagent.errors import ConfigError
from defiagent.secrets import SecretUnavailable, current
from defiagent.secrets.agent import prepare_agent_secrets, references_in

A = "0x" + "11" * 20
B = "0x" + "22" * 20
RPC_KEY = "rpcKEY-4fj29Xq"


def agent_table(secrets_config, **over):
    table = {
        "rpc_url": "vault:secret/ac/rpc#url",
        "rpc_urls": ["aws-sm:ac/rpc2#url"],
        "rpc_quorum": 2,
        "chain_id": 1,
        "protocols": {"router": A, "weth": B},
        "signer": {
            "backend": "keystore",
            "path": "k.json",
            "password_ref": "vault:secret/ac/ks#pw",
        },
        "alerts": {"webhook_url": "aws-sm:ac/hook#url"},
        "market": {
            "http": {
                "api_key": "vault:secret/ac/price#key",
                "pairs": [
                    {
                        "base": A,
                        "quote": B,
                        "url": "https://prices.example/{base}",
                        "price_path": "p",
                        "timestamp_path": "t",
                    }
                ],
            },
            "references": ["twap", "http"],
        },
        "strategy": {"name": "mean-reversion", "secrets": {"api_key": "aws-sm:ac/model#key"}},
        "secrets": secrets_config.model_dump(mode="json"),
    }
    table.update(over)
    return table


@pytest.fixture
def stored(openbao_session, secrets_manager):
    openbao_session.kv_put("ac/rpc", {"url": f"https://rpc.example/v3/{RPC_KEY}"})
    openbao_session.kv_put("ac/ks", {"pw": "keystore-pw-Lq0"})
    openbao_session.kv_put("ac/price", {"key": "price-key-M2v"})
    for name, data in (
        ("ac/rpc2", {"url": "https://rpc2.example/k/abc"}),
        ("ac/hook", {"url": "https://hooks.example/T0/B0/xyz"}),
        ("ac/model", {"key": "model-key-Pp9"}),
    ):
        with contextlib.suppress(Exception):  # already there from another test of this run
            secrets_manager.put(name, data)


def test_every_reference_is_resolved_once_at_start(stored, secrets_config):
    cfg = parse_config(agent_table(secrets_config))
    assert cfg.rpc_url == "vault:secret/ac/rpc#url"  # the config holds references only
    ready = prepare_agent_secrets(cfg)
    assert ready.rpc_url == f"https://rpc.example/v3/{RPC_KEY}"
    assert ready.rpc_urls == ["https://rpc2.example/k/abc"]
    assert RPC_KEY not in str(ready.redacted())  # what the audit log's start record shows
    reads = current().reads
    for ref in references_in(cfg).values():
        assert reads[ref] == 1, ref
    assert set(references_in(cfg)) == {
        "the keystore password",
        "alerts.webhook_url",
        "market.http.api_key",
        "strategy mean-reversion secret api_key",
    }


def test_a_missing_secret_stops_the_start_naming_it(stored, secrets_config):
    table = agent_table(secrets_config)
    table["alerts"] = {"webhook_url": "aws-sm:ac/absent#url"}
    with pytest.raises(SecretUnavailable) as info:
        prepare_agent_secrets(parse_config(table))
    assert info.value.exit_code == 3
    assert "alerts.webhook_url (aws-sm:ac/absent#url)" in str(info.value)


def test_a_reference_that_resolves_to_plain_http_is_refused(
    stored, secrets_config, openbao_session
):
    openbao_session.kv_put("ac/badrpc", {"url": f"http://rpc.example/v3/{RPC_KEY}"})
    cfg = parse_config(agent_table(secrets_config, rpc_url="vault:secret/ac/badrpc#url"))
    with pytest.raises(
        ConfigError, match=r"rpc_url \(vault:secret/ac/badrpc#url\) is plain http"
    ) as info:
        prepare_agent_secrets(cfg)
    assert info.value.exit_code == 2
    assert RPC_KEY not in str(info.value)


def test_a_secret_value_in_the_config_is_refused(secrets_config):
    table = agent_table(secrets_config)
    table["signer"] = {"backend": "keystore", "path": "k.json", "password_ref": "hunter2hunter2"}
    with pytest.raises(ConfigError, match="never the secret itself") as info:
        parse_config(table)
    assert "hunter2hunter2" not in str(info.value)


def _cli_config(tmp_path, vault_settings, **over):
    import tomli_w

    table = {
        "rpc_url": "vault:secret/ac/absent#url",
        "chain_id": 1,
        "state_dir": str(tmp_path / "state"),
        "protocols": {"router": A, "weth": B},
        "signer": {"backend": "keystore", "path": "k.json", "password_env": "DA_UNUSED"},
        "secrets": {"vault": vault_settings.model_dump(mode="json", exclude_none=True)},
    }
    table.update(over)
    path = tmp_path / "agent.toml"
    path.write_text(tomli_w.dumps(table))
    return path


def test_run_with_a_missing_secret_is_one_sentence_exit_3(tmp_path, vault_settings, capsys):
    from defiagent.cli.app import main

    code = main(["run", "--config", str(_cli_config(tmp_path, vault_settings)), "--ticks", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 3
    assert "rpc_url (vault:secret/ac/absent#url)" in err
    assert "does not exist" in err
    assert "Traceback" not in err


def test_run_with_a_plain_http_remote_rpc_is_refused_exit_2(tmp_path, vault_settings, capsys):
    from defiagent.cli.app import main

    path = _cli_config(tmp_path, vault_settings, rpc_url=f"http://rpc.example/v3/{RPC_KEY}")
    code = main(["run", "--config", str(path), "--ticks", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert "not loopback: use https" in err
    assert RPC_KEY not in err
