"""The resolver: memory-only cache, expiry, reload, and values masked in every log record."""

from __future__ import annotations

import logging

import keyring
import keyring.core
import pytest
from keyrings.alt.file import PlaintextKeyring

from defiagent import secrets
from defiagent.secrets import SecretResolver, SecretsConfig
from defiagent.secrets.resolver import install_log_redaction

VALUE = "resolver-value-Zk3u7"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def file_keyring(monkeypatch, tmp_path):
    monkeypatch.setattr(keyring.core, "_keyring_backend", None)  # restored after the test
    backend = PlaintextKeyring()
    backend.file_path = str(tmp_path / "keyring.cfg")
    keyring.set_keyring(backend)
    return backend


def test_refresh_seconds_rereads_a_value_from_its_source(file_keyring):
    clock = Clock()
    r = SecretResolver(SecretsConfig(refresh_seconds=60), clock=clock)
    keyring.set_password("da", "rotating", "one-value")
    assert r.resolve("keyring:da/rotating") == "one-value"
    keyring.set_password("da", "rotating", "two-value")
    clock.now += 59
    assert r.resolve("keyring:da/rotating") == "one-value"  # from memory
    clock.now += 2
    assert r.resolve("keyring:da/rotating") == "two-value"
    keyring.delete_password("da", "rotating")
    clock.now += 61  # expired and gone: no stale value is served
    with pytest.raises(secrets.SecretUnavailable):
        r.resolve("keyring:da/rotating")


def test_environment_values_are_read_each_time(monkeypatch):
    r = SecretResolver()
    monkeypatch.setenv("DA_ENV", "one-value")
    assert r.resolve("env:DA_ENV") == "one-value"
    monkeypatch.delenv("DA_ENV")
    with pytest.raises(secrets.SecretUnavailable):
        r.resolve("env:DA_ENV")


def test_a_handle_sees_a_reload_and_never_shows_its_value(monkeypatch):
    r = SecretResolver()
    monkeypatch.setenv("DA_HOOK", VALUE)
    handle = r.handle("env:DA_HOOK", what="alerts.webhook_url")
    assert handle.get() == VALUE
    assert VALUE not in repr(handle)
    assert VALUE not in str(handle)
    monkeypatch.setenv("DA_HOOK", VALUE + "-new")
    r.reload()
    assert handle.get() == VALUE + "-new"


def test_a_missing_secret_fails_the_handle_at_creation(monkeypatch):
    monkeypatch.delenv("DA_ABSENT", raising=False)
    with pytest.raises(secrets.SecretUnavailable, match=r"price API key: .*DA_ABSENT"):
        SecretResolver().handle("env:DA_ABSENT", what="price API key")


def test_resolved_values_are_masked_in_any_logger(monkeypatch, caplog):
    monkeypatch.setenv("DA_LOGGED", VALUE)
    install_log_redaction()
    secrets.configure(None).resolve("env:DA_LOGGED")
    with caplog.at_level(logging.INFO):
        logging.getLogger("some.library").info("connecting to https://x/%s", VALUE)
        logging.getLogger("defiagent.x").warning(f"inline {VALUE} too")
    text = caplog.text
    assert VALUE not in text
    assert text.count("[secret]") == 2


def test_the_key_inside_a_resolved_url_is_masked_on_its_own(monkeypatch, caplog):
    monkeypatch.setenv("DA_RPC", f"https://rpc.example/v3/{VALUE}x?apikey={VALUE}y")
    install_log_redaction()
    secrets.configure(None).resolve("env:DA_RPC")
    with caplog.at_level(logging.DEBUG):
        # what urllib3 logs: the path and query only, not the whole URL
        logging.getLogger("urllib3.connectionpool").debug(
            '%s "POST %s HTTP/1.1" 200', "rpc.example", f"/v3/{VALUE}x?apikey={VALUE}y"
        )
    assert VALUE not in caplog.text


def test_debug_logs_emitted_while_reading_a_secret_are_withheld(monkeypatch, caplog):
    from defiagent.secrets.source import Fetched

    class Chatty:  # a client that logs the whole answer at DEBUG, as botocore does
        scheme = "env"

        def read(self, ref):
            logging.getLogger("botocore.parsers").debug("Response body: %s", VALUE + "-body")
            return Fetched(VALUE + "-body")

    install_log_redaction()
    r = SecretResolver(sources={"env": Chatty()})
    with caplog.at_level(logging.DEBUG):
        assert r.resolve("env:ANY") == VALUE + "-body"
        logging.getLogger("other").debug("after the read %s", "is kept")
    assert VALUE not in caplog.text
    assert "withheld" in caplog.text
    assert "after the read is kept" in caplog.text
