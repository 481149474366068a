"""The TLS rule: https with verification for remote endpoints, http only on loopback."""

from __future__ import annotations

import time

import pytest

from defiagent.errors import ConfigError
from defiagent.market.http_price import HttpPriceConfig, HttpPricePair, HttpPriceReference
from defiagent.market.models import PoolState, TokenInfo
from defiagent.monitoring.alerts import AlertsConfig, WebhookAlertSink, build_alerts
from defiagent.monitoring.interfaces import Alert, AlertKind, AlertSeverity
from defiagent.net import tls
from defiagent.net.tls import check_secure_url, tls_problem
from tests.secrets.https_server import HttpsJsonServer, make_test_ca

A = "0x" + "11" * 20
B = "0x" + "22" * 20


@pytest.mark.parametrize(
    "url",
    [
        "https://rpc.example/v3/key",
        "https://10.0.0.5:8545",
        "http://127.0.0.1:8545",
        "http://127.8.9.10/",
        "http://localhost:8200",
        "http://[::1]:8545",
    ],
)
def test_allowed(url):
    assert tls_problem(url) is None
    assert check_secure_url(url, what="rpc_url") == url


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://rpc.example/v3/key", "not loopback: use https"),
        ("http://10.0.0.5:8545", "not loopback"),  # a private address is still a network
        ("http://192.168.1.2", "not loopback"),
        ("http://127.0.0.1.nip.io", "not loopback"),  # a name that only looks like loopback
        ("http://localhost.evil.example", "not loopback"),
        ("http://0.0.0.0:8545", "not loopback"),
        ("http://[::ffff:10.0.0.1]", "not loopback"),
        ("ws://rpc.example", "only https"),
        ("ftp://127.0.0.1", "only https"),
        ("rpc.example:8545", "only https"),
        ("https://", "has no host"),
        ("https://h:notaport", "not a valid URL"),
    ],
)
def test_refused_with_a_sentence_exit_2(url, why):
    with pytest.raises(ConfigError, match=why) as info:
        check_secure_url(url, what="rpc_url")
    assert info.value.exit_code == 2
    assert "/v3/key" not in str(info.value)  # a path may be a key: never quoted


def test_every_configured_endpoint_is_held_to_the_rule(tmp_path):
    from defiagent.config import parse_config
    from defiagent.secrets.settings import VaultSettings
    from defiagent.signing.config import parse_signer_config

    base = {
        "chain_id": 1,
        "protocols": {"router": A, "weth": B},
        "signer": {"backend": "keystore", "path": "k.json", "password_env": "X"},
    }
    with pytest.raises(ConfigError, match=r"rpc_url .*not loopback"):
        parse_config(base | {"rpc_url": "http://rpc.example/v3/k"})
    with pytest.raises(ConfigError, match=r"rpc_urls .*not loopback"):
        parse_config(base | {"rpc_url": "https://a.example", "rpc_urls": ["http://b.example"]})
    assert parse_config(base | {"rpc_url": "vault:secret/rpc#url"}).rpc_url.startswith("vault:")
    with pytest.raises(ConfigError, match="endpoint_url is plain http"):
        parse_signer_config(
            {"backend": "kms", "key_id": "k", "region": "r", "endpoint_url": "http://kms.example"}
        )
    with pytest.raises(ValueError, match="not loopback"):
        VaultSettings(url="http://vault.example", token_file=tmp_path / "t")
    with pytest.raises(ValueError, match="https URL"):
        HttpPricePair(
            base=A, quote=B, url="http://prices.example/p", price_path="p", timestamp_path="t"
        )
    with pytest.raises(ConfigError, match="not loopback"):
        build_alerts(
            AlertsConfig(), environ={"DEFIAGENT_ALERT_WEBHOOK_URL": "http://hooks.example/T/x"}
        )


@pytest.fixture
def test_ca(tmp_path):
    return make_test_ca(tmp_path)


def _price_source(url: str) -> HttpPriceReference:
    pair = HttpPricePair(
        base=A, quote=B, url=f"{url}/price", price_path="price", timestamp_path="ts"
    )
    return HttpPriceReference(HttpPriceConfig(pairs=[pair]))


def test_a_real_handshake_refuses_an_unknown_ca_and_accepts_the_configured_bundle(test_ca):
    ca, cert, key = test_ca
    server = HttpsJsonServer(cert, key, {"price": 2.0, "ts": int(time.time())})
    ta = TokenInfo(address=A, symbol="DTKN", decimals=18)
    tb = TokenInfo(address=B, symbol="DUSD", decimals=18)
    pool = PoolState(address=A, token0=A, token1=B, reserve0=2 * 10**24, reserve1=10**24)
    try:
        tls.set_ca_bundle(None)  # the system trust store only: the test CA is not in it
        refused = _price_source(server.url).read(ta, tb, pool, 0)
        assert not refused.answered
        assert "SSLError" in refused.reason
        tls.set_ca_bundle(ca)  # [tls] ca_bundle: the same server is now trusted
        accepted = _price_source(server.url).read(ta, tb, pool, 0)
        assert accepted.answered
        assert accepted.price == pytest.approx(2.0)

        # The alert webhook client holds the same line.
        tls.set_ca_bundle(None)
        alert = Alert(
            kind=AlertKind.KILL_SWITCH, severity=AlertSeverity.CRITICAL, title="t", detail="d"
        )
        sink = WebhookAlertSink(f"{server.url}/hook", max_attempts=1, backoff_initial=0)
        sink.send(alert)
        sink.flush(5)
        assert sink.failed == 1
        assert not server.posts
        sink.close()
        tls.set_ca_bundle(ca)
        sink = WebhookAlertSink(f"{server.url}/hook", max_attempts=1, backoff_initial=0)
        sink.send(alert)
        sink.flush(5)
        assert sink.delivered == 1
        assert len(server.posts) == 1
        sink.close()
    finally:
        tls.set_ca_bundle(None)
        server.close()


def test_the_rpc_client_verifies_too(test_ca):
    from defiagent.chain.rpc import JsonRpcClient
    from defiagent.errors import InfraError

    ca, cert, key = test_ca
    server = HttpsJsonServer(cert, key, {})
    try:
        tls.set_ca_bundle(None)
        client = JsonRpcClient(f"{server.url}/rpc", timeout=5)
        with pytest.raises(InfraError):
            client.call_int("eth_chainId")
        client.close()
        assert not server.posts  # refused in the handshake: no request was ever sent
        tls.set_ca_bundle(ca)
        client = JsonRpcClient(f"{server.url}/rpc", timeout=5)
        assert client.call_int("eth_chainId") == 1
        client.close()
    finally:
        tls.set_ca_bundle(None)
        server.close()
