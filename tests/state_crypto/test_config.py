"""[state.encryption] and [retention] in agent.toml: defaults, and bad values as one
sentence naming the field (exit 2)."""

from __future__ import annotations

import pytest

from defiagent.config import parse_config
from defiagent.errors import ConfigError

BASE = {
    "rpc_url": "http://127.0.0.1:8545",
    "chain_id": 31337,
    "protocols": {"router": "0x" + "11" * 20, "weth": "0x" + "22" * 20},
    "signer": {"backend": "keystore", "path": "k.json"},
}


def test_off_by_default_and_no_retention_limit():
    cfg = parse_config(BASE)
    assert cfg.state.encryption.enabled is False
    assert cfg.retention.audit_max_age_days is None


def test_sections_parse():
    cfg = parse_config(
        BASE
        | {
            "state": {
                "encryption": {
                    "enabled": True,
                    "backend": "vault-transit",
                    "vault_transit": {"url": "https://vault.example:8200"},
                }
            },
            "retention": {"audit_max_age_days": 400},
        }
    )
    assert cfg.state.encryption.backend_params()["token"] == "env:VAULT_TOKEN"
    assert cfg.retention.audit_max_age_days == 400


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ({"state": {"encryption": {"enabled": True, "backend": "aws-kms"}}}, "state.encryption"),
        ({"state": {"encryption": {"backend": "gpg"}}}, "state.encryption.backend"),
        ({"state": {"encryption": {"key": "hunter2"}}}, "state.encryption.key"),
        ({"retention": {"audit_max_age_days": 0}}, "retention.audit_max_age_days"),
    ],
)
def test_bad_values_name_the_field(section, field):
    with pytest.raises(ConfigError, match=field) as err:
        parse_config(BASE | section)
    assert err.value.exit_code == 2
