"""`vault:` references against a real OpenBao dev server (Vault's API, KV v2)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from defiagent.errors import ConfigError
from defiagent.secrets import SecretResolver, SecretsConfig, SecretUnavailable
from defiagent.secrets.settings import VaultSettings
from defiagent.testing.openbao import OpenBaoDev
from tests.secrets.conftest import write_private

VALUE = "vault-value-Qz81xw"


def resolver_for(settings: VaultSettings) -> SecretResolver:
    return SecretResolver(SecretsConfig(vault=settings))


def test_reads_a_field_with_a_token_file(openbao_session, vault_settings):
    openbao_session.kv_put("t1/rpc", {"url": f"https://rpc.example/v3/{VALUE}", "other": "x"})
    r = resolver_for(vault_settings)
    assert r.resolve("vault:secret/t1/rpc#url") == f"https://rpc.example/v3/{VALUE}"
    # The only field may be read without naming it; two fields need #field.
    openbao_session.kv_put("t1/one", {"password": VALUE})
    assert r.resolve("vault:secret/t1/one") == VALUE
    with pytest.raises(SecretUnavailable, match="has 2 fields") as info:
        r.resolve("vault:secret/t1/rpc")
    assert VALUE not in str(info.value)


def test_missing_path_and_field_are_exit_3_naming_the_reference(openbao_session, vault_settings):
    openbao_session.kv_put("t2/app", {"key": VALUE})
    r = resolver_for(vault_settings)
    for ref, why in (
        ("vault:secret/t2/nope#key", "does not exist"),
        ("vault:secret/t2/app#other", "has no field 'other'"),
        ("vault:nomount/t2/app#key", "vault:nomount/t2/app#key"),
    ):
        with pytest.raises(SecretUnavailable, match=why) as info:
            r.resolve(ref, what="the keystore password")
        assert info.value.exit_code == 3
        assert ref in str(info.value)
        assert VALUE not in str(info.value)
        assert len(str(info.value).splitlines()) == 1


def test_a_token_whose_policy_does_not_cover_the_path_is_denied(openbao_session, tmp_path):
    openbao_session.kv_put("t3/allowed", {"v": "fine-value"})
    openbao_session.kv_put("t3/forbidden", {"v": VALUE})
    token = openbao_session.token_for(paths=["secret/data/t3/allowed"], name="t3-reader")
    settings = VaultSettings(
        url=openbao_session.url,
        auth="token-file",
        token_file=write_private(tmp_path / "tok", token),
    )
    r = resolver_for(settings)
    assert r.resolve("vault:secret/t3/allowed#v") == "fine-value"
    with pytest.raises(SecretUnavailable, match="denied") as info:
        r.resolve("vault:secret/t3/forbidden#v")
    assert VALUE not in str(info.value)
    assert token not in str(info.value)


def test_approle_login_reads_and_a_wrong_secret_id_is_refused(openbao_session, tmp_path):
    openbao_session.kv_put("t4/hook", {"url": f"https://hooks.example/{VALUE}"})
    login = openbao_session.approle("t4", paths=["secret/data/t4/*"])
    settings = VaultSettings(
        url=openbao_session.url,
        auth="approle",
        role_id=login.role_id,
        secret_id_file=write_private(tmp_path / "sid", login.secret_id),
    )
    assert resolver_for(settings).resolve("vault:secret/t4/hook#url").endswith(VALUE)
    bad = settings.model_copy(
        update={"secret_id_file": write_private(tmp_path / "bad", "not-the-secret-id")}
    )
    with pytest.raises(SecretUnavailable, match="login to Vault") as info:
        resolver_for(bad).resolve("vault:secret/t4/hook#url")
    assert "not-the-secret-id" not in str(info.value)


def test_credential_files_readable_by_others_or_absent_are_refused(openbao_session, tmp_path):
    token_file = tmp_path / "vault-token"
    token_file.write_text(openbao_session.token)
    token_file.chmod(0o644)
    settings = VaultSettings(url=openbao_session.url, auth="token-file", token_file=token_file)
    with pytest.raises(SecretUnavailable, match="readable by other users"):
        resolver_for(settings).resolve("vault:secret/x#y")
    gone = settings.model_copy(update={"token_file": tmp_path / "absent"})
    with pytest.raises(SecretUnavailable, match="cannot be read"):
        resolver_for(gone).resolve("vault:secret/x#y")


def test_no_vault_table_and_an_unreachable_vault_are_exit_3(tmp_path):
    with pytest.raises(SecretUnavailable, match=r"needs a \[secrets.vault\] table"):
        SecretResolver().resolve("vault:secret/a#b")
    settings = VaultSettings(
        url="http://127.0.0.1:9",  # discard port: nothing listens
        auth="token-file",
        token_file=write_private(tmp_path / "tok", "s.whatever"),
        timeout_seconds=1,
    )
    with pytest.raises(SecretUnavailable, match="cannot be reached") as info:
        resolver_for(settings).resolve("vault:secret/a#b")
    assert info.value.exit_code == 3


def test_values_are_cached_in_memory_and_reread_after_sighup(openbao_session, vault_settings):
    openbao_session.kv_put("t5/key", {"k": "first-value"})
    r = resolver_for(vault_settings)
    assert r.resolve("vault:secret/t5/key#k") == "first-value"
    openbao_session.kv_put("t5/key", {"k": "second-value"})  # rotated in the vault
    assert r.resolve("vault:secret/t5/key#k") == "first-value"  # cached
    assert r.reads["vault:secret/t5/key#k"] == 1
    restore = r.install_sighup()
    try:
        os.kill(os.getpid(), signal.SIGHUP)  # the real signal, as an operator sends it
        time.sleep(0.05)
        assert r.resolve("vault:secret/t5/key#k") == "second-value"
        assert r.reads["vault:secret/t5/key#k"] == 2
    finally:
        restore()


@pytest.mark.slow  # two 2-second leases
def test_a_reload_that_fails_keeps_the_value_a_lease_that_ends_does_not(openbao_session, tmp_path):
    openbao_session.kv_put("t6/key", {"k": "leased-value"})
    # An AppRole login whose token lives 2 s: its values are re-read when it ends.
    login = openbao_session.approle(
        "t6", paths=["secret/data/t6/*"], token_ttl="2s", secret_id_ttl="1h"
    )
    settings = VaultSettings(
        url=openbao_session.url,
        auth="approle",
        role_id=login.role_id,
        secret_id_file=write_private(tmp_path / "sid", login.secret_id),
    )
    r = resolver_for(settings)
    assert r.resolve("vault:secret/t6/key#k") == "leased-value"
    openbao_session.kv_put("t6/key", {"k": "renewed-value"})
    assert r.resolve("vault:secret/t6/key#k") == "leased-value"
    time.sleep(2.2)  # the login's lease is over: logged in again, read again
    assert r.resolve("vault:secret/t6/key#k") == "renewed-value"
    assert r.reads["vault:secret/t6/key#k"] == 2
    # SIGHUP-style reload while the vault denies: the still-valid value is kept.
    openbao_session.client().secrets.kv.v2.delete_metadata_and_all_versions(path="t6/key")
    r.reload()
    assert r.resolve("vault:secret/t6/key#k") == "renewed-value"
    time.sleep(2.2)  # but once its lease ends there is no value to keep: exit 3
    with pytest.raises(SecretUnavailable, match="does not exist"):
        r.resolve("vault:secret/t6/key#k")


def test_vault_over_tls_verifies_its_certificate(tmp_path):
    with OpenBaoDev(tls=True) as bao:
        bao.kv_put("tls/key", {"k": VALUE})
        token_file = write_private(tmp_path / "tok", bao.token)
        without_ca = VaultSettings(url=bao.url, auth="token-file", token_file=token_file)
        with pytest.raises(SecretUnavailable, match="certificate that does not verify"):
            resolver_for(without_ca).resolve("vault:secret/tls/key#k")
        with_ca = without_ca.model_copy(update={"ca_bundle": bao.ca_cert})
        assert resolver_for(with_ca).resolve("vault:secret/tls/key#k") == VALUE


def test_plain_http_to_a_remote_vault_is_refused_at_config():
    with pytest.raises(ValueError, match="not loopback: use https"):
        VaultSettings(url="http://vault.example:8200", auth="token-file", token_file="/t")
    with pytest.raises(ValueError, match="needs token_file"):
        VaultSettings(url="https://vault.example", auth="token-file")
    with pytest.raises(ValueError, match="needs role_id and secret_id_file"):
        VaultSettings(url="https://vault.example", auth="approle", role_id="r")


def test_a_malformed_reference_is_a_config_error():
    with pytest.raises(ConfigError, match="vault:mount/path#field") as info:
        SecretResolver().resolve("vault:justamount")
    assert info.value.exit_code == 2


def test_a_redirecting_vault_never_gets_the_token_forwarded(tmp_path):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[dict] = []

    class Elsewhere(BaseHTTPRequestHandler):
        def do_GET(self):  # the attacker's address: records what arrives
            seen.append(dict(self.headers))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            return

    target = ThreadingHTTPServer(("127.0.0.1", 0), Elsewhere)

    class Redirecting(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(307)
            self.send_header("Location", f"http://127.0.0.1:{target.server_address[1]}{self.path}")
            self.end_headers()

        def log_message(self, *args):
            return

    vault = ThreadingHTTPServer(("127.0.0.1", 0), Redirecting)
    for server in (target, vault):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings = VaultSettings(
            url=f"http://127.0.0.1:{vault.server_address[1]}",
            auth="token-file",
            token_file=write_private(tmp_path / "tok", "s.token-that-must-stay"),
        )
        with pytest.raises(SecretUnavailable) as info:
            resolver_for(settings).resolve("vault:secret/a#b")
        assert info.value.exit_code == 3
        assert seen == []  # the redirect was not followed: the token went nowhere else
    finally:
        for server in (target, vault):
            server.shutdown()
            server.server_close()
