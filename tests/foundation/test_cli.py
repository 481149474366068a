"""CLI conventions: --version, doctor, --json, exit codes, one-sentence errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

DEFIAGENT = str(Path(sys.executable).parent / "defiagent")


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [DEFIAGENT, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
        check=False,
    )


def test_version():
    proc = run("--version")
    assert proc.returncode == 0
    assert proc.stdout.startswith("defiagent ")


def test_doctor_is_all_green_and_lists_every_tool():
    proc = run("doctor", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is True
    names = {c["name"] for c in report["checks"]}
    for required in (
        "anvil",
        "cast",
        "slither",
        "node",
        "python: web3",
        "python: eth-account",
        "strategy sandbox (bwrap)",  # really ran the interpreter inside bubblewrap
    ):
        assert required in names
    assert {"solc 0.5.16 (solcjs)", "solc 0.6.6 (solcjs)"} <= names
    assert any(n.startswith("solc 0.8.") for n in names)


def test_doctor_names_what_is_missing_with_a_remedy(tmp_path):
    proc = run("doctor", "--json", env={"DEFIAGENT_TOOLCHAIN_DIR": str(tmp_path)})
    assert proc.returncode == 3
    report = json.loads(proc.stdout)
    missing = {c["name"]: c for c in report["checks"] if not c["ok"]}
    assert "anvil" in missing or any("anvil" in n for n in missing)
    assert all(c["remedy"] for c in missing.values())
    human = run("doctor", env={"DEFIAGENT_TOOLCHAIN_DIR": str(tmp_path)})
    assert human.returncode == 3
    assert "bootstrap" in human.stdout


def test_unknown_command_is_a_usage_error():
    proc = run("no-such-command")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr


def test_bad_option_value_is_a_usage_error_in_one_line():
    proc = run("demo", "--liquidity", "lots")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "--liquidity" in proc.stderr


def test_infrastructure_error_is_one_sentence_exit_3_and_json_on_request(tmp_path):
    env = {"DEFIAGENT_TOOLCHAIN_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    proc = run("demo", "--json", env=env)
    assert proc.returncode == 3
    assert "Traceback" not in proc.stderr
    assert "anvil is not installed" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    body = json.loads(proc.stdout)
    assert body["ok"] is False
    assert body["error"]["exit_code"] == 3


def test_debug_shows_the_traceback(tmp_path):
    env = {"DEFIAGENT_TOOLCHAIN_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    proc = run("--debug", "demo", env=env)
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr
