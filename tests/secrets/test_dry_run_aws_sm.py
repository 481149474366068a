"""`defiagent dry-run` with every secret in Secrets Manager (moto's server, real boto3):
the fork URL, the keystore password, the webhook URL and the strategy's model key; none of
them reaches a file, a log line, a command line or a child's environment."""

from __future__ import annotations

import json
import logging
import os
import secrets
import tempfile
import tomllib
from pathlib import Path

import pytest
import tomli_w

from defiagent import secrets as secret_refs
from defiagent.agent.demo_inbox import WebhookInbox
from defiagent.cli.app import main
from tests.agent.test_cli_run import PASSWORD_ENV, mainnet, setup  # noqa: F401 - fixtures
from tests.secrets.leak_scan import ProcessWatch, file_leaks, files_under, now

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("vetting")]


def test_dry_run_with_every_secret_from_secrets_manager(
    setup,  # noqa: F811 - the fixture imported above
    secrets_manager,
    capsys,
    caplog,
    monkeypatch,
):
    monkeypatch.delenv(PASSWORD_ENV, raising=False)  # the password is only in Secrets Manager
    home, w3 = setup["home"], setup["w3"]
    api_key, hook_token, model_key = (secrets.token_urlsafe(18) for _ in range(3))
    with WebhookInbox() as inbox:
        name = f"dry-run/agent-{secrets.token_hex(4)}"
        secrets_manager.put(
            name,
            {
                "rpc_url": f"{w3.provider.endpoint_uri}/?apikey={api_key}",
                "keystore_password": setup["password"],
                "webhook_url": f"{inbox.url}/{hook_token}",
                "model_api_key": model_key,
            },
        )
        caplog.set_level(logging.DEBUG)  # from here on: the test's own write is not logged
        config = tomllib.loads((home / "agent.toml").read_text())
        config["signer"] = {
            "backend": "keystore",
            "path": "agent-key.json",
            "password_ref": f"aws-sm:{name}#keystore_password",
        }
        config["alerts"] = {"webhook_url": f"aws-sm:{name}#webhook_url", "min_severity": "info"}
        config["strategy"]["secrets"] = {"api_key": f"aws-sm:{name}#model_api_key"}
        config["secrets"] = {
            "aws_sm": secrets_manager.settings().model_dump(mode="json", exclude_none=True)
        }
        (home / "agent-sm.toml").write_text(tomli_w.dumps(config))
        started = now()
        with ProcessWatch() as watch:
            code = main(
                [
                    "dry-run",
                    "--fork-url",
                    f"aws-sm:{name}#rpc_url",
                    "--config",
                    str(home / "agent-sm.toml"),
                    "--ticks",
                    "2",
                    "--json",
                ]
            )
        out = capsys.readouterr()
    doc = json.loads(out.out)
    assert code == 0, doc
    assert doc["totals"]["executed"] == 1  # signed with the password from Secrets Manager
    reads = secret_refs.current().reads
    for field in ("rpc_url", "keystore_password", "webhook_url", "model_api_key"):
        assert reads.get(f"aws-sm:{name}#{field}", 0) >= 1, field

    needles = [api_key, hook_token, model_key, setup["password"]]
    assert watch.children_seen
    assert watch.leaks(needles) == []
    roots = [home, Path(doc["audit_log"]).parent.parent, Path(tempfile.gettempdir())]
    roots += [
        Path(os.environ[k]) for k in ("XDG_CONFIG_HOME", "DEFIAGENT_CACHE_DIR") if k in os.environ
    ]
    written = files_under(roots, started)
    assert any(p.name == "audit.jsonl" for p in written)
    assert file_leaks(written, needles) == []
    for needle in needles:
        assert needle not in caplog.text
        assert needle not in out.out
        assert needle not in out.err


def test_dry_run_with_a_missing_secret_is_one_sentence_exit_3(
    setup,  # noqa: F811
    secrets_manager,
    capsys,
):
    home = setup["home"]
    config = tomllib.loads((home / "agent.toml").read_text())
    config["secrets"] = {
        "aws_sm": secrets_manager.settings().model_dump(mode="json", exclude_none=True)
    }
    (home / "agent-sm-missing.toml").write_text(tomli_w.dumps(config))
    code = main(
        [
            "dry-run",
            "--fork-url",
            "aws-sm:dry-run/absent#rpc_url",
            "--config",
            str(home / "agent-sm-missing.toml"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 3
    assert "aws-sm:dry-run/absent#rpc_url" in err
    assert "does not exist" in err
    assert "Traceback" not in err
