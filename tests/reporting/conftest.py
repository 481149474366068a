"""One realistic day, written once per session (88 fsync'd appends) and copied per test."""

from __future__ import annotations

import shutil

import pytest

from defiagent.monitoring.audit_log import default_head_key_path
from defiagent.reporting import AUDIT_FILE
from tests.reporting.day import write_day

MANDATE = {"max_trades_per_day": 4, "max_slippage_bps": 15}


@pytest.fixture(scope="session")
def day_template(tmp_path_factory):
    folder = tmp_path_factory.mktemp("day")
    expected = write_day(folder / AUDIT_FILE, mandate=MANDATE)
    return folder, expected


@pytest.fixture
def day_dir(day_template, tmp_path):
    """A state dir holding the day's audit.jsonl (and its .head), and the expected figures."""
    folder, expected = day_template
    state_dir = tmp_path / "state"
    shutil.copytree(folder, state_dir)
    # The copy's head is authenticated by the key of the folder it came from.
    shutil.copy2(
        default_head_key_path(folder / AUDIT_FILE), default_head_key_path(state_dir / AUDIT_FILE)
    )
    return state_dir, expected
