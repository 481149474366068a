"""The flow of docs/backtest.md, by its commands, against a local chain: scripted traders make
the history, `market record` reads it, `backtest --certify` replays it through the
sandboxed strategy, the guard and the risk rules and signs a certificate, and `run` starts
only with a valid one (refusing it missing, failed, stale, or for other params)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
from pathlib import Path

import pytest
import tomli_w
from web3 import Web3

from defiagent.backtest.devnet import DEVNET_GATES, commands, set_up
from defiagent.chain.anvil import Anvil
from defiagent.cli.app import main

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("backtest-flow")]
PASSWORD_ENV = "DEFIAGENT_TEST_FLOW_PASSWORD"
LENIENT_GATES = DEVNET_GATES


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    """The devnet of `defiagent market devnet` (the docs' first step), on a fresh anvil."""
    home = tmp_path_factory.mktemp("flow")
    os.environ[PASSWORD_ENV] = secrets.token_urlsafe(12)
    try:
        with Anvil(log_dir=home / "anvil") as node:
            w3 = Web3(Web3.HTTPProvider(node.url))
            net = set_up(w3, node.url, home, blocks=120, password_env=PASSWORD_ENV)
            assert "--certify" in " ".join(commands(net, PASSWORD_ENV))
            _pin(home)
            # The docs' record step, by its command (each test here replays this history).
            record = [
                "market", "record", "--rpc-url", node.url, "--pools", ",".join(net.pools),
                "--from-block", str(net.first_block), "--to-block", str(net.last_block),
                "--out", str(home / "history"), "--max-range", "16", "--json",
            ]  # fmt: skip
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                assert main(record) == 0
            yield {
                "home": home,
                "w3": w3,
                "url": node.url,
                "market": net.market,
                "blocks": (net.first_block, net.last_block),
                "config": net.config,
                "recorded": json.loads(out.getvalue()),
            }
    finally:
        os.environ.pop(PASSWORD_ENV, None)


def _pin(home: Path) -> None:
    pin = ["strategy", "pin", "-c", str(home / "agent.toml"), "--key", str(home / "operator.json")]
    assert main([*pin, "--password-env", PASSWORD_ENV]) == 0


def _run(home: Path, ticks: int = 1) -> int:
    return main(["run", "--config", str(home / "agent.toml"), "--ticks", str(ticks)])


def _certify(home: Path, *extra: str) -> list[str]:
    return [
        "backtest", "-c", str(home / "agent.toml"), "--data", str(home / "history"), *extra,
        "--certify", "--key", str(home / "operator.json"), "--password-env", PASSWORD_ENV,
    ]  # fmt: skip


def _certificate(home: Path) -> Path:
    return home / "backtest-certificates" / "mean-reversion.json"


def test_record_backtest_certify_run(flow, capsys):
    home = flow["home"]
    first, last = flow["blocks"]
    _certificate(home).unlink(missing_ok=True)
    capsys.readouterr()

    # No certificate yet: run refuses, in one sentence, before anything is signed.
    assert _run(home) == 1
    err = capsys.readouterr().err
    assert "has no backtest certificate" in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1

    recorded = flow["recorded"]
    assert recorded["ticks"] == last - first + 1  # a swap in every block the traders made
    backtest = _certify(home, "--html", str(home / "backtest.html"), "--json")
    code = main(backtest)
    doc = json.loads(capsys.readouterr().out)
    assert code == 0, [g["sentence"] for g in doc.get("gates", [])] or doc
    assert doc["result"]["metrics"]["n_trades"] > 0
    assert {g["gate"] for g in doc["gates"]} == {"pbo", "warmup"}
    cert = doc["certificate"]
    assert cert["passed"]
    assert cert["data"]["sha256"] == recorded["sha256"]
    assert cert["mandate"].get("max_trade_value")  # the figures became a mandate
    page = (home / "backtest.html").read_text()
    assert "Backtest" in page
    assert "<svg" in page
    assert "Certificate" in page

    # With a valid certificate, run starts and trades; the certificate's mandate is the
    # strategy's drift envelope.
    assert _run(home, ticks=2) == 0
    audit = [json.loads(line) for line in (home / "state" / "audit.jsonl").read_text().splitlines()]
    checked = [r for r in audit if r["kind"] == "backtest-certificate-checked"]
    bounds = {k: v for k, v in cert["mandate"].items() if v is not None}
    assert checked
    assert checked[-1]["payload"]["mandate"] == bounds


def test_run_refuses_a_certificate_for_other_params_or_tampered_or_stale(flow, capsys):
    home = flow["home"]
    cert_file = _certificate(home)
    if not cert_file.exists():
        assert main(_certify(home)) == 0
    original_cert, original_config = cert_file.read_text(), (home / "agent.toml").read_text()
    try:
        # Other params, pinned again (the pin check alone would pass): the certificate is for
        # what was tested, so run refuses naming the param.
        config = dict(flow["config"])
        config["strategies"] = [
            {
                **config["strategies"][0],
                "params": {**config["strategies"][0]["params"], "window": 9},
            }
        ]
        (home / "agent.toml").write_text(tomli_w.dumps(config))
        _pin(home)
        capsys.readouterr()
        assert _run(home) == 1
        err = capsys.readouterr().err
        assert "params differ from the backtested" in err
        assert "window" in err

        (home / "agent.toml").write_text(original_config)
        _pin(home)
        # A figure edited after signing.
        tampered = json.loads(original_cert)
        tampered["figures"]["sharpe"] = 9.9
        cert_file.write_text(json.dumps(tampered))
        capsys.readouterr()
        assert _run(home) == 1
        assert "changed after it was signed" in capsys.readouterr().err

        # Stale: a maximum age the certificate is already past.
        cert_file.write_text(original_cert)
        stale = dict(flow["config"])
        stale["backtest"] = {**stale["backtest"], "max_certificate_age_days": 1e-9}
        (home / "agent.toml").write_text(tomli_w.dumps(stale))
        capsys.readouterr()
        assert _run(home) == 1
        assert "days old" in capsys.readouterr().err
    finally:
        cert_file.write_text(original_cert)
        (home / "agent.toml").write_text(original_config)
        _pin(home)


def test_a_failed_gate_makes_a_failed_certificate_that_run_refuses(flow, capsys):
    home = flow["home"]
    cert_file = _certificate(home)
    original_cert = cert_file.read_text() if cert_file.exists() else None
    original_config = (home / "agent.toml").read_text()
    strict = dict(flow["config"])
    strict["backtest"] = {
        **strict["backtest"],
        "gates": {**LENIENT_GATES, "deflated_sharpe": {"min_dsr": 0.999}},
    }
    try:
        (home / "agent.toml").write_text(tomli_w.dumps(strict))
        capsys.readouterr()
        assert main(_certify(home)) == 1
        err = capsys.readouterr().err
        assert "failed the gate deflated-sharpe" in err
        assert json.loads(cert_file.read_text())["passed"] is False
        assert _run(home) == 1
        err = capsys.readouterr().err
        assert "gate deflated-sharpe failed" in err
        assert "Traceback" not in err
    finally:
        (home / "agent.toml").write_text(original_config)
        if original_cert is not None:
            cert_file.write_text(original_cert)
        else:
            cert_file.unlink(missing_ok=True)


def test_a_sweep_through_the_backtest_command(flow, capsys):
    """`--sweep grid.toml` runs each point on a two-worker Dask LocalCluster; every point
    tried is reported, and the chosen one is one of them."""
    home = flow["home"]
    grid = home / "grid.toml"
    grid.write_text('strategy = "mean-reversion"\n[params]\nwindow = [3, 4]\n')
    argv = ["backtest", "-c", str(home / "agent.toml"), "--data", str(home / "history")]
    capsys.readouterr()
    assert main([*argv, "--sweep", str(grid), "--no-gates", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    sweep = doc["sweep"]
    assert sweep["tried"] == 2
    assert sweep["scheduler"].startswith("LocalCluster")
    assert sweep["chosen"]["window"] in (3, 4)
    assert doc["result"]["params"]["window"] == sweep["chosen"]["window"]
    other = home / "other-grid.toml"
    other.write_text('strategy = "someone-else"\n[params]\nwindow = [3]\n')
    assert main([*argv, "--sweep", str(other)]) == 2
    assert "is for strategy someone-else" in capsys.readouterr().err
