"""`defiagent demo --secrets openbao`: every secret read from a local OpenBao, none leaked
into a file, a log line, a command line or a child's environment."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import pytest

from defiagent import secrets
from defiagent.agent.demo import run_demo
from defiagent.cli.app import main
from tests.secrets.leak_scan import ProcessWatch, file_leaks, files_under, now

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("vetting")]


def test_the_demo_takes_every_secret_from_openbao_and_leaks_none(tmp_path, caplog, monkeypatch):
    monkeypatch.delenv("DEFIAGENT_KEYSTORE_PASSWORD", raising=False)
    caplog.set_level(logging.DEBUG)
    started = now()
    vaults = []

    def on_event(kind, data):
        if kind == "openbao":
            vaults.append(data)

    with ProcessWatch() as watch:
        result = run_demo(
            5, workdir=tmp_path / "demo", on_event=on_event, secrets_backend="openbao"
        )
    (vault,) = vaults
    values = vault.values
    assert set(values) == {"keystore_password", "rpc_url", "webhook_url", "model_api_key"}

    # Every secret was named by a vault: reference and read from OpenBao through it...
    assert result.secrets == {
        "rpc_url": "vault:secret/defiagent/demo#rpc_url",
        "the keystore password": "vault:secret/defiagent/demo#keystore_password",
        "alerts.webhook_url": "vault:secret/defiagent/demo#webhook_url",
        "strategy mean-reversion secret api_key": "vault:secret/defiagent/demo#model_api_key",
    }
    reads = secrets.current().reads
    for ref in result.secrets.values():
        assert reads.get(ref, 0) >= 1, ref
    # ...and it worked: the agent signed with the keystore only OpenBao could open, over
    # the RPC URL only OpenBao held, and alerts reached the webhook only OpenBao knew.
    assert sum(1 for t in result.ticks for i in t.intents if i.status == "executed") >= 1
    assert result.alerts
    assert result.audit.ok
    assert all(e.blocked for e in result.escapes if e.attempted)

    # The values themselves: the password, the API key in the RPC URL's query, the token in
    # the webhook's path, the model key.
    needles = [
        values["keystore_password"],
        values["rpc_url"].split("apikey=", 1)[1],
        values["webhook_url"].rsplit("/", 1)[1],
        values["model_api_key"],
    ]
    assert all(len(n) >= 16 for n in needles)
    assert watch.children_seen  # anvil, its forks, the sandboxes, OpenBao were watched
    assert watch.leaks(needles) == []
    roots = [tmp_path, Path(tempfile.gettempdir())]
    roots += [
        Path(os.environ[k]) for k in ("XDG_CONFIG_HOME", "DEFIAGENT_CACHE_DIR") if k in os.environ
    ]
    written = files_under(roots, started)
    assert any(p.name == "audit.jsonl" for p in written)
    assert file_leaks(written, needles) == []
    for needle in needles:
        assert needle not in caplog.text


def test_the_cli_refuses_openbao_with_another_signer(capsys):
    assert main(["demo", "--secrets", "openbao", "--signer", "kms"]) == 2
    err = capsys.readouterr().err
    assert "--secrets openbao goes with --signer keystore" in err
    assert main(["demo", "--secrets", "plaintext"]) == 2
