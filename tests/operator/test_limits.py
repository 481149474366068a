"""Approved limits: looser or tighter on the real GuardSection/RiskSection, the seal, the start check."""

from __future__ import annotations

import io
import json
import sys
from types import SimpleNamespace

import pyotp
import pytest

from defiagent.cli.app import main
from defiagent.config import load_config, parse_config
from defiagent.errors import Refused
from defiagent.guard.registry import RiskSection
from defiagent.monitoring.audit_log import AuditLog, verify_audit_log
from defiagent.operator.enrolment import EnrolmentStore, new_enrolment
from defiagent.operator.limits import (
    FILENAME,
    approve_limits,
    compare_limits,
    current_limits,
    looser_changes,
    require_approved_limits,
)
from tests.operator.support import audit_records, code_at

BASE = {
    "rpc_url": "http://127.0.0.1:1",
    "chain_id": 1,
    "protocols": {
        "router": "0x7a250d5630B4cF539739dF2C5dAcb4c659F2488D",
        "weth": "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2",
    },
    "signer": {"backend": "ledger"},
}


def cfg(state=None, guard=None, risk=None):
    data = {**BASE, "guard": guard or {}, "risk": risk or {}}
    if state is not None:
        data["state_dir"] = str(state)
    return parse_config(data)


def sentences(approved_cfg, current_cfg) -> list[str]:
    return [
        c.sentence()
        for c in compare_limits(current_limits(approved_cfg), current_limits(current_cfg))
    ]


def test_looser_and_tighter_on_the_real_sections():
    base = cfg()
    assert sentences(base, base) == []
    assert sentences(base, cfg(guard={"per_tx_value_cap": {"max_value": 2000}})) == [
        "limit guard.per_tx_value_cap.max_value raised from 1000.0 to 2000.0"
    ]
    assert sentences(base, cfg(guard={"per_tx_value_cap": {"max_value": 500}})) == []
    assert sentences(base, cfg(guard={"slippage": {"max_slippage_bps": 50}})) == []
    assert sentences(base, cfg(guard={"fee_cap": {"max_priority_fee_per_gas_gwei": 5}})) == [
        "limit guard.fee_cap.max_priority_fee_per_gas_gwei raised from 3.0 to 5.0"
    ]
    assert sentences(base, cfg(risk={"max_daily_loss": {"max_loss_pct": 1}})) == []
    assert sentences(base, cfg(risk={"max_drawdown": {"enabled": False}})) == [
        "limit risk.max_drawdown.enabled disabled from True to False"
    ]
    assert sentences(cfg(risk={"max_drawdown": {"enabled": False}}), base) == []
    # an allowed list may lose items, not gain them
    fewer = cfg(guard={"intent_kinds": {"allowed_kinds": ["swap-exact-in", "approve"]}})
    assert sentences(base, fewer) == []
    assert sentences(fewer, base)[0].startswith("limit guard.intent_kinds.allowed_kinds changed")
    # a window's direction is not known from its name: any change needs the operator
    for seconds in (30, 120):
        changed = cfg(guard={"rate_limit": {"window_seconds": seconds}})
        assert sentences(base, changed) == [
            f"limit guard.rate_limit.window_seconds changed from 60 to {seconds}"
        ]
    several = cfg(guard={"rate_limit": {"max_intents": 11}, "approvals": {"max_value": 10**6}})
    assert len(sentences(base, several)) == 2


def test_generic_by_field_name():
    def check(old, new):
        return [c.sentence() for c in looser_changes(old, new)]

    assert check({"r": {"min_liquidity": 10}}, {"r": {"min_liquidity": 5}}) == [
        "limit r.min_liquidity lowered from 10 to 5"
    ]
    assert check({"r": {"min_liquidity": 10}}, {"r": {"min_liquidity": 50}}) == []
    assert check({"r": {"size_cap": 1}}, {"r": {"size_cap": None}}) == [
        "limit r.size_cap raised from 1 to none"
    ]
    assert check({"r": {"size_cap": None}}, {"r": {"size_cap": 1}}) == []
    assert check({"r": {"exposure_max": 1}}, {"r": {"exposure_max": 2}}) != []
    assert check({"r": {"mode": "strict"}}, {"r": {"mode": "lenient"}}) == [
        "limit r.mode changed from strict to lenient"
    ]
    assert check({"r": {"strict": True}}, {"r": {"strict": False}}) != []  # unknown bool
    assert check({"r": {"blocked_tokens": ["a"]}}, {"r": {"blocked_tokens": ["a", "b"]}}) == []
    assert check({"r": {"blocked_tokens": ["a"]}}, {"r": {"blocked_tokens": []}}) != []
    # a new rule section only adds refusals; a new field or a vanished section is not judged
    assert check({"r": {"max_x": 1}}, {"r": {"max_x": 1}, "new_rule": {"max_y": 9}}) == []
    assert check({"r": {"max_x": 1}}, {"r": {"max_x": 1, "fresh": 3}}) == [
        "limit r.fresh was added with 3"
    ]
    assert check({"r": {"max_x": 1}, "gone": {"max_y": 2}}, {"r": {"max_x": 1}}) == [
        'limit gone (was {"max_y": 2}) is gone'
    ]


def test_per_strategy_risk_overrides():
    risk = RiskSection()
    tight = RiskSection.model_validate({"max_position": {"max_position_pct": 20}})

    def with_strategies(*items):
        return SimpleNamespace(guard=cfg().guard, risk=risk, strategies=list(items))

    approved = current_limits(with_strategies(SimpleNamespace(name="mr", risk=tight)))
    assert approved["strategies"]["mr"]["max_position"]["max_position_pct"] == 20
    looser = RiskSection.model_validate({"max_position": {"max_position_pct": 40}})
    changes = compare_limits(
        approved, current_limits(with_strategies(SimpleNamespace(name="mr", risk=looser)))
    )
    assert [c.sentence() for c in changes] == [
        "limit strategies.mr.risk.max_position.max_position_pct raised from 20.0 to 40.0"
    ]
    # dropping the override falls back to the global 80%: looser than the approved 20%
    dropped = compare_limits(
        approved, current_limits(with_strategies(SimpleNamespace(name="mr", risk=None)))
    )
    assert [c.path for c in dropped] == ["strategies.mr.risk.max_position.max_position_pct"]
    # a new strategy with an override looser than the global section it would have had
    fresh = compare_limits(
        approved,
        current_limits(
            with_strategies(
                SimpleNamespace(name="mr", risk=tight),
                SimpleNamespace(
                    name="new",
                    risk=RiskSection.model_validate({"max_drawdown": {"max_drawdown_pct": 50}}),
                ),
            )
        ),
    )
    assert [c.path for c in fresh] == ["strategies.new.risk.max_drawdown.max_drawdown_pct"]
    # strategies without overrides run under the global section: nothing more to compare
    assert current_limits(cfg())["strategies"] == {"mean-reversion": None}
    assert "strategies" not in current_limits(SimpleNamespace(guard=cfg().guard, risk=risk))


def test_require_approved_limits(state):
    log = state / "audit.jsonl"
    with AuditLog(log) as audit:
        require_approved_limits(cfg(state), state, audit)  # no operator: passes
        assert audit_records(state) == []
        store = EnrolmentStore(state)
        store.save(new_enrolment("ops"))
        with pytest.raises(Refused, match="has not approved the limits; approve them with"):
            require_approved_limits(cfg(state), state, audit)
        assert approve_limits(cfg(state), state, store.load(), audit) == []
        require_approved_limits(cfg(state), state, audit)
        require_approved_limits(
            cfg(state, guard={"deadline": {"max_deadline_seconds": 60}}), state, audit
        )
        raised = cfg(state, guard={"window_value_cap": {"max_value": 9000}})
        with pytest.raises(Refused) as err:
            require_approved_limits(raised, state, audit)
        assert str(err.value) == (
            "limit guard.window_value_cap.max_value raised from 5000.0 to 9000.0 since the "
            "operator approved the limits; approve it with "
            "`defiagent operator approve-limits -c agent.toml`"
        )
        accepted = approve_limits(raised, state, store.load(), audit)
        assert [c.path for c in accepted] == ["guard.window_value_cap.max_value"]
        require_approved_limits(raised, state, audit)
    outcomes = [r["payload"]["outcome"] for r in audit_records(state)]
    assert outcomes == [
        "refused",
        "approved",
        "within-approved",
        "within-approved",
        "refused",
        "approved",
        "within-approved",
    ]
    assert verify_audit_log(log).ok
    assert store.load().secret not in log.read_text()


def test_a_hand_edited_snapshot_is_refused(state):
    store = EnrolmentStore(state)
    store.save(new_enrolment("ops"))
    approve_limits(cfg(state), state, store.load())
    path = state / FILENAME
    data = json.loads(path.read_text())
    data["limits"]["guard"]["per_tx_value_cap"]["max_value"] = 10**9
    path.write_text(json.dumps(data))
    path.chmod(0o600)
    loose = cfg(state, guard={"per_tx_value_cap": {"max_value": 10**9}})
    with pytest.raises(Refused, match="does not carry the operator's seal"):
        require_approved_limits(loose, state, None)


def _write_config(path, max_value):
    path.write_text(
        'rpc_url = "http://127.0.0.1:1"\nchain_id = 1\nstate_dir = "state"\n'
        "[protocols]\n"
        'router = "0x7a250d5630B4cF539739dF2C5dAcb4c659F2488D"\n'
        'weth = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"\n'
        '[signer]\nbackend = "ledger"\n'
        f"[guard.per_tx_value_cap]\nmax_value = {max_value}\n"
    )
    return path


def test_approve_limits_from_the_cli(enrolled, clock, monkeypatch, capsys, tmp_path):
    config = _write_config(tmp_path / "agent.toml", 1000)
    assert load_config(config).state_dir == enrolled
    monkeypatch.delenv("DEFIAGENT_OTP_CODE", raising=False)
    assert main(["operator", "approve-limits", "-c", str(config)]) == 1
    assert "needs the operator's current code" in capsys.readouterr().err
    clock.advance(30)
    monkeypatch.setenv("DEFIAGENT_OTP_CODE", code_at(enrolled, clock.t))
    assert main(["operator", "approve-limits", "-c", str(config), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["looser_than_before"] == []
    require_approved_limits(load_config(config), enrolled, None)
    _write_config(config, 1500)
    with pytest.raises(Refused, match=r"raised from 1000\.0 to 1500\.0"):
        require_approved_limits(load_config(config), enrolled, None)
    clock.advance(30)
    monkeypatch.setenv("DEFIAGENT_OTP_CODE", code_at(enrolled, clock.t))
    assert main(["operator", "approve-limits", "-c", str(config), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["looser_than_before"] == [
        "limit guard.per_tx_value_cap.max_value raised from 1000.0 to 1500.0"
    ]
    require_approved_limits(load_config(config), enrolled, None)
    # re-enrolling carries the approval over (sealed again under the new secret) ...
    assert reenroll(enrolled, clock, monkeypatch, capsys, "--state-dir", str(enrolled)) == (
        "carried over"
    )
    require_approved_limits(load_config(config), enrolled, None)
    # ... or, with -c, approves the config's limits with the same confirmation
    _write_config(config, 1700)
    assert reenroll(enrolled, clock, monkeypatch, capsys, "-c", str(config)) == "approved"
    require_approved_limits(load_config(config), enrolled, None)


def reenroll(state, clock, monkeypatch, capsys, *where) -> str:
    clock.advance(30)
    secret = pyotp.random_base32()
    monkeypatch.setattr("defiagent.operator.enrolment.new_secret", lambda: secret)
    lines = f"{code_at(state, clock.t)}\n{pyotp.TOTP(secret).at(clock.t)}\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO(lines))
    assert main(["operator", "enroll", "--otp-stdin", *where, "--json"]) == 0
    return json.loads(capsys.readouterr().out)["limits"]


def test_per_strategy_overrides_of_the_real_config():
    def with_override(pct):
        risk = {"max_position": {"max_position_pct": pct}} if pct is not None else {}
        data = {**BASE, "strategies": [{"name": "mean-reversion", "risk": risk}]}
        return parse_config(data)

    approved = current_limits(with_override(20))
    assert approved["strategies"]["mean-reversion"]["max_position"]["max_position_pct"] == 20
    assert compare_limits(approved, current_limits(with_override(10))) == []
    assert [c.sentence() for c in compare_limits(approved, current_limits(with_override(30)))] == [
        "limit strategies.mean-reversion.risk.max_position.max_position_pct raised from 20.0 to 30.0"
    ]
    # the override dropped: the strategy runs under the global 80%
    dropped = compare_limits(approved, current_limits(with_override(None)))
    assert [c.sentence() for c in dropped] == [
        "limit strategies.mean-reversion.risk.max_position.max_position_pct raised from 20.0 to 80.0"
    ]
