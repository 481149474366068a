"""KMS credentials from secret references (a vault: path on a real OpenBao), against a
local KMS (moto on loopback): the signer works and used exactly those credentials."""

from __future__ import annotations

import pytest

from defiagent import secrets
from defiagent.secrets import SecretsConfig, SecretUnavailable
from defiagent.signing.config import build_signer, parse_signer_config
from defiagent.signing.testing.moto_kms import LocalKms

ACCESS_KEY = "AKIAVAULTTEST00001"


@pytest.mark.usefixtures("_moto_credentials")
def test_kms_signer_with_credentials_from_vault(openbao_session, vault_settings):
    openbao_session.kv_put("kms/agent", {"id": ACCESS_KEY, "secret": "vault-held-secret-key"})
    secrets.configure(SecretsConfig(vault=vault_settings))
    with LocalKms("us-east-1") as kms:
        table = {
            "backend": "kms",
            "key_id": kms.create_key(),
            "region": "us-east-1",
            "endpoint_url": kms.endpoint_url,
            "credentials": {
                "access_key_id": "vault:secret/kms/agent#id",
                "secret_access_key": "vault:secret/kms/agent#secret",
            },
        }
        signer = build_signer(parse_signer_config(table))
        assert signer.address.startswith("0x")
        credentials = signer._kms()._request_signer._credentials
        assert credentials.access_key == ACCESS_KEY
        assert credentials.secret_key == "vault-held-secret-key"
        missing = table | {
            "credentials": {
                "access_key_id": "vault:secret/kms/agent#id",
                "secret_access_key": "vault:secret/kms/agent#absent",
            }
        }
        with pytest.raises(SecretUnavailable, match="KMS secret access key"):
            build_signer(parse_signer_config(missing))


def test_credentials_must_be_references():
    from defiagent.errors import ConfigError

    with pytest.raises(ConfigError, match="never the secret itself"):
        parse_signer_config(
            {
                "backend": "kms",
                "key_id": "k",
                "region": "r",
                "credentials": {"access_key_id": ACCESS_KEY, "secret_access_key": "env:X"},
            }
        )
