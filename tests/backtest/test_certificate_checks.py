"""The certificate `run` requires: each way it can be wrong is refused with its reason.

A synthetic market (no chain) and the in-process strategy keep these fast; the full flow
against a local chain, through the commands, is test_certificate_flow.py."""

from __future__ import annotations

import json
import secrets
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from eth_account import Account

from defiagent.backtest.certificate import (
    check_certificate,
    issue_certificate,
    require_certificates,
    write_certificate,
)
from defiagent.backtest.engine import run_backtest
from defiagent.backtest.synthetic import synthetic_allowlist, synthetic_config, synthetic_history
from defiagent.errors import Refused
from defiagent.signing.keystore import KeystoreSigner, write_keystore
from defiagent.strategy.builtin.mean_reversion import MeanReversion, MeanReversionParams
from defiagent.strategy.config import BUILTIN_DIR
from defiagent.strategy.in_process import InProcessStrategy


class Verdict(dict):
    """What a gate verdict looks like to the certificate (a model or a mapping)."""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    home = tmp_path_factory.mktemp("cert")
    password = secrets.token_urlsafe(12)
    operator = write_keystore(home / "op.json", bytes(Account.create().key), password, light=True)
    other = write_keystore(home / "other.json", bytes(Account.create().key), password, light=True)
    code = home / "mean_reversion.py"
    shutil.copy(BUILTIN_DIR / "mean_reversion.py", code)
    cfg = synthetic_config(home, pin_signers=[operator])
    data = cfg.model_dump(mode="json")
    data["strategies"][0] = {**data["strategies"][0], "builtin": None, "path": str(code)}
    from defiagent.config import parse_config

    cfg = parse_config(data)
    history = synthetic_history(400, seed=3)
    sc = cfg.strategies[0]
    port = InProcessStrategy(MeanReversion(MeanReversionParams(**sc.params)), name=sc.name)
    result = run_backtest(cfg, history, allowlist=synthetic_allowlist(), port=port)
    return {
        "cfg": cfg,
        "sc": sc,
        "history": history,
        "result": result,
        "code": code,
        "signer": KeystoreSigner(home / "op.json", password),
        "other": KeystoreSigner(home / "other.json", password),
        "other_address": other,
    }


def _issue(world, gates=(), **kw):
    cert = issue_certificate(
        world["cfg"], world["sc"], world["result"], world["history"], list(gates),
        kw.pop("signer", world["signer"]), **kw,
    )  # fmt: skip
    write_certificate(world["cfg"], cert)
    return cert


def test_a_valid_certificate_holds_and_carries_the_mandate(world):
    passed = Verdict(gate="warmup", passed=True, sentence="0 of 50 ticks differ")
    cert = _issue(world, [passed])
    assert cert.passed
    assert cert.gates[0].gate == "warmup"
    assert cert.data.sha256 == world["history"].content_hash
    assert cert.figures == world["result"].metrics
    got = check_certificate(world["cfg"], world["sc"])
    assert got == cert
    assert require_certificates(world["cfg"])["mean-reversion"].mandate == cert.mandate
    assert cert.mandate.max_trade_value is not None  # measured from the backtest's trades


def test_missing_or_malformed_is_refused(world):
    path = Path(world["cfg"].backtest.certificates_dir) / "mean-reversion.json"
    path.unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)  # whichever test of the file runs first
    with pytest.raises(Refused, match="has no backtest certificate"):
        check_certificate(world["cfg"], world["sc"])
    path.write_text("{not json")
    with pytest.raises(Refused, match="malformed"):
        check_certificate(world["cfg"], world["sc"])


def test_an_edit_after_signing_is_refused(world):
    cert = _issue(world)
    path = Path(world["cfg"].backtest.certificates_dir) / "mean-reversion.json"
    for field, value in (
        ("figures.sharpe", 5.0),
        ("passed", True),
        ("mandate.max_trade_value", 1e9),
    ):
        doc = json.loads(path.read_text())
        head, _, tail = field.partition(".")
        if tail:
            doc[head][tail] = value
        else:
            doc[head] = not cert.passed if value is True else value
        path.write_text(json.dumps(doc))
        with pytest.raises(Refused, match="changed after it was signed"):
            check_certificate(world["cfg"], world["sc"])
        _issue(world)


def test_only_an_operator_key_counts(world):
    with pytest.raises(Refused, match="not one of pin_signers"):
        _issue(world, signer=world["other"])
    _issue(world)  # signed by the operator, then the operator is no longer a pin signer
    cfg = world["cfg"].model_copy(update={"pin_signers": [world["other_address"]]})
    with pytest.raises(Refused, match="not one of pin_signers"):
        check_certificate(cfg, world["sc"])


def test_a_failed_gate_is_refused_naming_it(world):
    failed = Verdict(gate="deflated-sharpe", passed=False, sentence="DSR 0.4 (needs >= 0.95)")
    cert = _issue(world, [Verdict(gate="warmup", passed=True), failed])
    assert not cert.passed
    with pytest.raises(Refused, match="gate deflated-sharpe failed"):
        check_certificate(world["cfg"], world["sc"])
    _issue(world)


def test_age_limit_on_both_sides(world):
    cert = _issue(world)
    issued = datetime.fromisoformat(cert.issued_at)
    limit = timedelta(days=world["cfg"].backtest.max_certificate_age_days)
    check_certificate(world["cfg"], world["sc"], now=issued + limit - timedelta(minutes=1))
    with pytest.raises(Refused, match="days old"):
        check_certificate(world["cfg"], world["sc"], now=issued + limit + timedelta(minutes=1))
    with pytest.raises(Refused, match="in the future"):
        check_certificate(world["cfg"], world["sc"], now=issued - timedelta(hours=1))


def test_other_code_or_params_are_refused(world):
    _issue(world)
    code = world["code"]
    original = code.read_text()
    try:
        code.write_text(original + "\n# one more line\n")
        with pytest.raises(Refused, match="code changed since it was backtested"):
            check_certificate(world["cfg"], world["sc"])
    finally:
        code.write_text(original)
    check_certificate(world["cfg"], world["sc"])
    changed = world["sc"].model_copy(update={"params": {**world["sc"].params, "window": 21}})
    with pytest.raises(Refused, match=r"params differ from the backtested ones \(window changed"):
        check_certificate(world["cfg"], changed)


def test_a_certificate_filed_under_another_strategy_is_refused(world):
    _issue(world)
    other = world["sc"].model_copy(update={"name": "other"})
    src = Path(world["cfg"].backtest.certificates_dir) / "mean-reversion.json"
    shutil.copy(src, src.with_name("other.json"))
    with pytest.raises(Refused, match="certifies strategy mean-reversion, not other"):
        check_certificate(world["cfg"], other)


def test_params_other_than_the_configs_are_not_certified(world):
    result = world["result"].model_copy(update={"params": {**world["sc"].params, "window": 3}})
    with pytest.raises(Refused, match="other params"):
        issue_certificate(
            world["cfg"], world["sc"], result, world["history"], [], world["signer"],
            now=datetime.now(UTC),
        )  # fmt: skip
