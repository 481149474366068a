"""SecondFactor: real pyotp codes, the window, replay, the persisted lockout, the audit trail."""

from __future__ import annotations

import io
import stat
import sys

import pytest

from defiagent.errors import Refused
from defiagent.monitoring.audit_log import AuditLog, verify_audit_log
from defiagent.operator.codes import read_code
from defiagent.operator.enrolment import FILENAME, EnrolmentStore, new_enrolment
from defiagent.operator.gates import require_operator_code
from defiagent.operator.second_factor import SecondFactor
from tests.operator.support import START, audit_records, code_at, strings_in, wrong_code


@pytest.fixture
def store(state):
    s = EnrolmentStore(state)
    s.save(new_enrolment("ops@test"))
    return s


def factor(state, clock, audit=None) -> SecondFactor:
    """A new object each time, as a separate CLI invocation would build."""
    return SecondFactor(state, audit=audit, clock=clock)


def test_accepts_a_real_code_once_and_never_again(state, store, clock):
    f = factor(state, clock)
    assert f.required
    code = code_at(state, clock.t)
    f.verify(code, "testing")
    assert store.load().last_counter == int(START // 30)
    with pytest.raises(Refused, match="already used once"):
        factor(state, clock).verify(code, "testing")
    clock.advance(30)
    factor(state, clock).verify(code_at(state, clock.t), "testing")
    # A code of an earlier step than the last accepted one is a replay too, even in the window.
    with pytest.raises(Refused, match="already used once"):
        factor(state, clock).verify(code, "testing")


def test_window_is_one_step_either_side(state, store, clock):
    factor(state, clock).verify(code_at(state, clock.t, -1), "drift behind")
    factor(state, clock).verify(code_at(state, clock.t, +1), "drift ahead")
    clock.advance(120)
    with pytest.raises(Refused, match="is wrong"):
        factor(state, clock).verify(code_at(state, clock.t, -2), "too old")
    factor(state, clock).verify(
        code_at(state, clock.t)[:3] + " " + code_at(state, clock.t)[3:], "spaced"
    )


def test_wrong_and_missing_codes(state, store, clock):
    with pytest.raises(
        Refused, match=r"is wrong \(1 failed attempt\(s\) of 5 allowed in 15 minutes\)"
    ):
        factor(state, clock).verify(wrong_code(state, clock.t), "testing")
    with pytest.raises(Refused, match="DEFIAGENT_OTP_CODE"):
        factor(state, clock).verify(None, "testing")
    with pytest.raises(Refused, match="is wrong"):
        factor(state, clock).verify("not a code ✓", "testing")


def test_lockout_persists_across_invocations_and_is_audited(state, store, clock):
    log = state / "audit.jsonl"
    with AuditLog(log) as audit:
        for _ in range(5):
            with pytest.raises(Refused) as err:
                factor(state, clock, audit).verify(wrong_code(state, clock.t), "turning it off")
            clock.advance(10)
        assert "locked out until" in str(err.value)
        good = code_at(state, clock.t)
        with pytest.raises(Refused, match=r"locked out until 2027-01-15T08:\d\d:\d\d\+00:00"):
            factor(state, clock, audit).verify(good, "turning it off")
        clock.advance(15 * 60 - 50 + 1)  # the first failure leaves the window
        factor(state, clock, audit).verify(code_at(state, clock.t), "turning it off")
        # an accepted code clears the failures: one more mistake is not a lockout
        clock.advance(30)
        with pytest.raises(Refused, match="1 failed attempt"):
            factor(state, clock, audit).verify(wrong_code(state, clock.t), "turning it off")
    records = audit_records(state)
    assert {r["kind"] for r in records} == {"operator-2fa"}
    assert [r["payload"]["outcome"] for r in records] == ["failed"] * 5 + [
        "locked-out",
        "accepted",
        "failed",
    ]
    assert all(r["payload"]["action"] == "turning it off" for r in records)
    assert verify_audit_log(log).ok
    text = log.read_text()
    assert store.load().secret not in text
    assert good not in {s for r in records for s in strings_in(r["payload"])}
    assert f'"{good}"' not in text


def test_store_is_private_and_refused_when_loose(state, store, clock):
    path = state / FILENAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in state.iterdir()] == [FILENAME]  # no temp file left behind
    path.chmod(0o644)
    f = factor(state, clock)
    assert f.required  # a loose file still demands a code: fail closed
    with pytest.raises(Refused, match=r"open to group or others \(mode 0644\).*chmod 600"):
        f.verify(code_at(state, clock.t), "testing")


def test_not_enrolled_needs_nothing(state, clock, monkeypatch):
    def no_reading(**_):
        raise AssertionError("no code is read when no operator is enrolled")

    monkeypatch.setattr("defiagent.operator.gates.read_code", no_reading)
    assert not factor(state, clock).required
    with AuditLog(state / "audit.jsonl") as audit:
        assert require_operator_code(state, "turning the kill switch off", audit=audit) is False
    assert audit_records(state) == []


def test_code_sources(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("123 456\n"))
    monkeypatch.setenv("DEFIAGENT_OTP_CODE", "654321")
    assert read_code(otp_stdin=True) == "123456"  # --otp-stdin: one line of stdin
    assert read_code() == "654321"  # otherwise the environment
    monkeypatch.delenv("DEFIAGENT_OTP_CODE")
    assert read_code() is None

    class Tty(io.StringIO):
        def isatty(self):
            return True

    prompts = []
    monkeypatch.setattr(sys, "stdin", Tty())
    monkeypatch.setattr("getpass.getpass", lambda prompt: prompts.append(prompt) or "777888")
    assert read_code(otp_stdin=True) == "777888"  # a terminal: the hidden prompt wins
    assert prompts == ["Operator code (TOTP): "]
