"""The state dir is 0700 and every file in it 0600, whatever the umask; a loose one refuses."""

from __future__ import annotations

import os
import stat

import pytest

from defiagent.agent import state_dir as state_dir_module
from defiagent.agent.state_dir import ensure_private_state_dir
from defiagent.errors import ConfigError, Refused
from defiagent.execution.journal import Journal
from defiagent.execution.models import PlannedCall
from defiagent.monitoring.audit_log import HEAD_KEY_ENV, AuditLog
from defiagent.monitoring.kill_switch import KillSwitch
from defiagent.operator.files import state_lock, write_private_json

AGENT = "0x1111111111111111111111111111111111111111"
ROUTER = "0x2222222222222222222222222222222222222222"


@pytest.fixture(autouse=True)
def usual_umask(tmp_path_factory, monkeypatch):
    """The common 022 umask, under which a plain open() makes files others can read."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg-config")))
    monkeypatch.delenv(HEAD_KEY_ENV, raising=False)
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_every_state_file_is_0600_and_the_dir_0700(tmp_path):
    state = tmp_path / "state"
    call = PlannedCall(
        intent_id="i1", intent_kind="approve", target=ROUTER, data="0x095ea7b3", sender=AGENT
    )
    with Journal(state / "journal.sqlite") as journal, AuditLog(state / "audit.jsonl") as audit:
        journal.plan(call, chain_id=1)
        audit.record("step", {"i": 1})
        KillSwitch(state, audit=audit).set(True, reason="test")
        write_private_json(state / "operator-failures.json", {"failures": []})
        with state_lock(state):
            pass
        names = {p.name for p in state.iterdir()}
        assert {"journal.sqlite-wal", "journal.sqlite-shm"} <= names  # while the journal is open
        loose = {p.name: oct(mode(p)) for p in state.iterdir() if mode(p) != 0o600}
        assert loose == {}
    assert {"journal.sqlite", "audit.jsonl", "audit.jsonl.head", "kill-switch.json"} <= names
    assert mode(state) == 0o700
    assert {p.name: oct(mode(p)) for p in state.iterdir() if mode(p) != 0o600} == {}
    ensure_private_state_dir(state)  # what the agent checks at start


def test_an_existing_journal_open_to_others_is_made_private(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    with Journal(state / "journal.sqlite"):
        pass
    (state / "journal.sqlite").chmod(0o644)
    with Journal(state / "journal.sqlite"):
        assert mode(state / "journal.sqlite") == 0o600
        assert mode(state / "journal.sqlite-wal") == 0o600


def test_ensure_creates_a_missing_state_dir_0700(tmp_path):
    state = tmp_path / "deep" / "state"
    ensure_private_state_dir(state)
    assert state.is_dir()
    assert mode(state) == 0o700


def test_ensure_accepts_a_private_dir(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / "audit.jsonl").touch(mode=0o600)
    (state / "fork").mkdir()
    (state / "fork" / "anvil.log").touch(mode=0o600)
    ensure_private_state_dir(state)


@pytest.mark.parametrize("loose", [0o755, 0o750, 0o701, 0o770])
def test_ensure_refuses_a_dir_others_can_enter(tmp_path, loose):
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(loose)
    with pytest.raises(Refused) as caught:
        ensure_private_state_dir(state)
    assert f"chmod 700 {state}" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_ensure_refuses_a_file_others_can_read(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / "journal.sqlite").touch(mode=0o600)
    (state / "kill-switch.json").touch()
    (state / "kill-switch.json").chmod(0o644)
    with pytest.raises(Refused, match=r"kill-switch\.json") as caught:
        ensure_private_state_dir(state)
    assert "chmod 600" in str(caught.value)


def test_ensure_refuses_a_loose_file_in_a_sub_dir(tmp_path):
    state = tmp_path / "state"
    (state / "fork").mkdir(parents=True, mode=0o700)
    state.chmod(0o700)
    (state / "fork" / "anvil.log").touch()
    (state / "fork" / "anvil.log").chmod(0o640)
    with pytest.raises(Refused, match=r"anvil\.log"):
        ensure_private_state_dir(state)


def test_ensure_refuses_a_dir_of_another_user(tmp_path, monkeypatch):
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    me = os.getuid()
    monkeypatch.setattr(state_dir_module.os, "getuid", lambda: me + 1)
    with pytest.raises(Refused, match="another user"):
        ensure_private_state_dir(state)


def test_ensure_refuses_a_file_where_the_dir_should_be(tmp_path):
    state = tmp_path / "state"
    state.write_text("")
    with pytest.raises(ConfigError, match="is a file, not a folder"):  # a mistyped path: exit 2
        ensure_private_state_dir(state)
