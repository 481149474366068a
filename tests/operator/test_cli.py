"""`defiagent operator ...` and the kill-switch gate, end to end through the CLI's main()."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pyotp

from defiagent.cli.app import main
from defiagent.monitoring.audit_log import verify_audit_log
from defiagent.monitoring.kill_switch import KillSwitch
from defiagent.operator.enrolment import FILENAME
from tests.operator.support import audit_records, code_at, stored_secret, strings_in, wrong_code

REPO = Path(__file__).resolve().parents[2]


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([*argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_refusal(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("refused: ")
    assert "Traceback" not in err
    return lines[0]


def test_enroll_stores_a_private_secret_and_shows_uri_and_qr(state, clock, monkeypatch, capsys):
    secret = pyotp.random_base32()
    monkeypatch.setattr("defiagent.operator.enrolment.new_secret", lambda: secret)
    monkeypatch.setenv("DEFIAGENT_OTP_CODE", pyotp.TOTP(secret).at(clock.t))
    code, out, _ = run(capsys, "operator", "enroll", "--state-dir", str(state), "--name", "ops")
    assert code == 0
    assert f"otpauth://totp/defiagent:ops?secret={secret}&issuer=defiagent" in out
    assert "▀" in out or "█" in out  # the compact QR code in the terminal
    assert stored_secret(state) == secret
    assert stat.S_IMODE((state / FILENAME).stat().st_mode) == 0o600
    code, out, _ = run(capsys, "operator", "status", "--state-dir", str(state), "--json")
    doc = json.loads(out)
    assert code == 0
    assert doc["enrolled"]
    assert doc["name"] == "ops"
    assert doc["limits_approved"] is False
    # the secret is never in the audit log
    assert secret not in (state / "audit.jsonl").read_text()


def test_enroll_with_a_wrong_confirmation_saves_nothing(state, clock, monkeypatch, capsys):
    monkeypatch.setenv("DEFIAGENT_OTP_CODE", "000000")
    monkeypatch.setattr("defiagent.operator.second_factor.matching_counters", lambda *a: [])
    code, _, err = run(capsys, "operator", "enroll", "--state-dir", str(state))
    assert code == 1
    assert "was not saved" in one_refusal(err)
    assert not (state / FILENAME).exists()


def test_enroll_for_real_through_a_pipe(tmp_path):
    """No patching: read the URI the command prints, compute the code, pipe it back."""
    state = tmp_path / "state"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    env.pop("DEFIAGENT_OTP_CODE", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from defiagent.cli.app import run; run()",
            *("operator", "enroll", "--otp-stdin", "--state-dir", str(state)),
        ],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        uri = ""
        while not uri:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            if line.startswith("otpauth://"):
                uri = line.strip()
        secret = parse_qs(urlparse(uri).query)["secret"][0]
        out, err = proc.communicate(pyotp.TOTP(secret).now() + "\n", timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "operator enrolled" in out
    assert stored_secret(state) == secret


def test_kill_switch_on_is_never_gated_off_is(enrolled, clock, monkeypatch, capsys):
    state = str(enrolled)
    code, _, _ = run(capsys, "kill-switch", "on", "--reason", "drill", "--state-dir", state)
    assert code == 0  # no code asked: stopping stays easy
    code, _, err = run(capsys, "kill-switch", "off", "--state-dir", state)
    assert code == 1
    assert "needs the operator's current code" in one_refusal(err)
    assert "DEFIAGENT_OTP_CODE" in err
    assert KillSwitch(enrolled).is_on()
    # the enrolment's own code (same step) is a replay
    monkeypatch.setenv("DEFIAGENT_OTP_CODE", code_at(enrolled, clock.t))
    code, _, err = run(capsys, "kill-switch", "off", "--state-dir", state)
    assert code == 1
    assert "already used once" in one_refusal(err)
    clock.advance(30)
    monkeypatch.setenv("DEFIAGENT_OTP_CODE", code_at(enrolled, clock.t))
    code, _, err = run(capsys, "kill-switch", "off", "--state-dir", state, "--json")
    assert code == 0, err
    assert not KillSwitch(enrolled).is_on()
    outcomes = [
        (r["payload"]["action"], r["payload"]["outcome"])
        for r in audit_records(enrolled)
        if r["kind"] == "operator-2fa"
    ]
    assert outcomes[-3:] == [
        ("turning the kill switch off", "missing"),
        ("turning the kill switch off", "replayed"),
        ("turning the kill switch off", "accepted"),
    ]


def test_kill_switch_off_code_from_stdin(enrolled, clock, monkeypatch, capsys):
    import io

    KillSwitch(enrolled).set(True)
    clock.advance(30)
    monkeypatch.setattr(sys, "stdin", io.StringIO(code_at(enrolled, clock.t) + "\n"))
    code, _, err = run(capsys, "kill-switch", "off", "--otp-stdin", "--state-dir", str(enrolled))
    assert code == 0, err
    assert not KillSwitch(enrolled).is_on()


def test_not_enrolled_kill_switch_off_needs_no_code(state, capsys):
    assert main(["kill-switch", "on", "--state-dir", str(state)]) == 0
    assert main(["kill-switch", "off", "--state-dir", str(state)]) == 0
    assert not KillSwitch(state).is_on()
    assert not [r for r in audit_records(state) if r["kind"].startswith("operator")]


def test_lockout_across_invocations(enrolled, clock, monkeypatch, capsys):
    state = str(enrolled)
    KillSwitch(enrolled).set(True)
    for _ in range(5):
        clock.advance(5)
        monkeypatch.setenv("DEFIAGENT_OTP_CODE", wrong_code(enrolled, clock.t))
        code, _, err = run(capsys, "kill-switch", "off", "--state-dir", state)
        assert code == 1
        one_refusal(err)
    assert "locked out until" in err
    clock.advance(30)
    good = code_at(enrolled, clock.t)
    monkeypatch.setenv("DEFIAGENT_OTP_CODE", good)
    code, out, err = run(capsys, "kill-switch", "off", "--state-dir", state, "--json")
    assert code == 1
    assert "locked out until 2027-01-15T08:15:05+00:00" in one_refusal(err)
    assert json.loads(out)["error"]["kind"] == "refused"
    code, out, _ = run(capsys, "operator", "status", "--state-dir", state, "--json")
    assert json.loads(out)["locked_until"] == "2027-01-15T08:15:05+00:00"
    assert KillSwitch(enrolled).is_on()
    clock.advance(15 * 60)
    monkeypatch.setenv("DEFIAGENT_OTP_CODE", code_at(enrolled, clock.t))
    assert main(["kill-switch", "off", "--state-dir", state]) == 0
    log = enrolled / "audit.jsonl"
    assert verify_audit_log(log).ok
    payloads = [r["payload"] for r in audit_records(enrolled) if r["kind"] == "operator-2fa"]
    assert [p["outcome"] for p in payloads][-7:] == ["failed"] * 5 + ["locked-out", "accepted"]
    text = log.read_text()
    assert stored_secret(enrolled) not in text
    assert f'"{good}"' not in text
    assert good not in {s for p in payloads for s in strings_in(p)}


def test_reenroll_needs_the_current_code_and_unenroll(enrolled, clock, monkeypatch, capsys):
    state = str(enrolled)
    old_secret = stored_secret(enrolled)
    monkeypatch.setenv("DEFIAGENT_OTP_CODE", "000000")
    code, _, err = run(capsys, "operator", "enroll", "--state-dir", state)
    assert code == 1
    assert "re-enrolling the operator" in one_refusal(err)
    assert stored_secret(enrolled) == old_secret
    # current code, then the new secret's code, as two lines of stdin
    import io

    new_secret = pyotp.random_base32()
    monkeypatch.setattr("defiagent.operator.enrolment.new_secret", lambda: new_secret)
    clock.advance(30)
    lines = f"{code_at(enrolled, clock.t)}\n{pyotp.TOTP(new_secret).at(clock.t)}\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO(lines))
    code, _, err = run(capsys, "operator", "enroll", "--otp-stdin", "--state-dir", state)
    assert code == 0, err
    assert stored_secret(enrolled) == new_secret
    clock.advance(30)
    monkeypatch.setenv("DEFIAGENT_OTP_CODE", code_at(enrolled, clock.t))
    code, out, err = run(capsys, "operator", "unenroll", "--state-dir", state, "--json")
    assert code == 0, err
    assert not (enrolled / FILENAME).exists()
    code, out, _ = run(capsys, "operator", "status", "--state-dir", state, "--json")
    assert json.loads(out)["enrolled"] is False


def test_loose_enrolment_file_is_refused_in_one_sentence(enrolled, clock, monkeypatch, capsys):
    (enrolled / FILENAME).chmod(0o640)
    clock.advance(30)
    monkeypatch.setenv("DEFIAGENT_OTP_CODE", code_at(enrolled, clock.t))
    code, _, err = run(capsys, "kill-switch", "off", "--state-dir", str(enrolled))
    assert code == 1
    assert "chmod 600" in one_refusal(err)
