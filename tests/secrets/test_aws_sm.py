"""`aws-sm:` references against moto's Secrets Manager server, through real boto3 calls."""

from __future__ import annotations

import pytest

from defiagent.secrets import SecretResolver, SecretsConfig, SecretUnavailable

VALUE = "sm-value-Jp4o9Q"


@pytest.fixture
def resolver(secrets_manager) -> SecretResolver:
    return SecretResolver(SecretsConfig(aws_sm=secrets_manager.settings()))


def test_a_json_field_by_name_and_by_arn(secrets_manager, resolver):
    arn = secrets_manager.put("sm1/agent", {"webhook": f"https://hooks.example/{VALUE}", "n": 1})
    assert resolver.resolve("aws-sm:sm1/agent#webhook").endswith(VALUE)
    assert resolver.resolve(f"aws-sm:{arn}#webhook").endswith(VALUE)


def test_a_plain_string_secret_without_a_field(secrets_manager, resolver):
    secrets_manager.put("sm2/password", VALUE)
    assert resolver.resolve("aws-sm:sm2/password") == VALUE
    with pytest.raises(SecretUnavailable, match="not a JSON object") as info:
        resolver.resolve("aws-sm:sm2/password#field")
    assert VALUE not in str(info.value)  # the body is never quoted


def test_missing_secret_or_field_is_exit_3_naming_the_reference(secrets_manager, resolver):
    secrets_manager.put("sm3/app", {"key": VALUE, "num": 5})
    for ref, why in (
        ("aws-sm:sm3/absent#key", "does not exist"),
        ("aws-sm:sm3/app#other", "has no field 'other'"),
        ("aws-sm:sm3/app#num", "empty or not text"),
    ):
        with pytest.raises(SecretUnavailable, match=why) as info:
            resolver.resolve(ref, what="market.http.api_key")
        assert info.value.exit_code == 3
        assert ref in str(info.value)
        assert "market.http.api_key" in str(info.value)
        assert VALUE not in str(info.value)


def test_no_table_and_no_endpoint_are_exit_3(tmp_path):
    with pytest.raises(SecretUnavailable, match=r"needs a \[secrets.aws_sm\] table"):
        SecretResolver().resolve("aws-sm:x#y")
    from defiagent.secrets.settings import AwsSmSettings

    down = AwsSmSettings(region="us-east-1", endpoint_url="http://127.0.0.1:9", timeout_seconds=1)
    with pytest.raises(SecretUnavailable, match="cannot be reached"):
        SecretResolver(SecretsConfig(aws_sm=down)).resolve("aws-sm:x#y")


def test_a_remote_plain_http_endpoint_is_refused():
    from defiagent.secrets.settings import AwsSmSettings

    with pytest.raises(ValueError, match="not loopback"):
        AwsSmSettings(region="us-east-1", endpoint_url="http://secretsmanager.example")
