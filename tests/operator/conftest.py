"""Fixtures: a fake clock every check reads, a state dir, an enrolled operator."""

from __future__ import annotations

import json

import pyotp
import pytest

from defiagent.cli.app import main
from defiagent.operator import enrolment, second_factor
from tests.operator.support import Clock


@pytest.fixture
def clock(monkeypatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(second_factor, "now", fake)
    return fake


@pytest.fixture
def state(tmp_path):
    return tmp_path / "state"


@pytest.fixture
def enrolled(state, clock, monkeypatch, capsys):
    """An operator enrolled through the CLI at clock.t (its first code used at that step)."""
    secret = pyotp.random_base32()
    monkeypatch.setattr(enrolment, "new_secret", lambda: secret)
    monkeypatch.setenv("DEFIAGENT_OTP_CODE", pyotp.TOTP(secret).at(clock.t))
    assert main(["operator", "enroll", "--state-dir", str(state), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["enrolled"] is True
    monkeypatch.delenv("DEFIAGENT_OTP_CODE")
    return state
