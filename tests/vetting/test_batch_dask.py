"""Batch vetting on Dask: 50 contracts on a real two-worker LocalCluster, one verdict each,
the caches shared; and the CLI's answers to bad batch input."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from defiagent.allowlist.policy import Policy
from defiagent.cli.app import main
from defiagent.vetting.batch import read_targets, run_batch

# =0.6.6: the quickest compiler of the toolchain to load, so 50 vets stay short.
CLEAN = (
    "// SPDX-License-Identifier: MIT\npragma solidity =0.6.6;\n"
    "contract C{n} {{ uint256 public x; function set(uint256 v) external {{ x = v; }} }}\n"
)
KILLABLE = (
    "// SPDX-License-Identifier: MIT\npragma solidity =0.6.6;\n"
    "contract K{n} {{ function kill() external {{ selfdestruct(msg.sender); }} }}\n"
)
BROKEN = "pragma solidity =0.6.6;\ncontract B{n} {{\n"


def make_corpus(folder: Path, count: int = 50) -> tuple[Path, dict[str, str]]:
    """`count` tiny contracts: every tenth is killable, the 25th does not compile."""
    folder.mkdir(parents=True, exist_ok=True)
    expected, lines = {}, ["# a batch for the test; comments and blank lines are skipped", ""]
    for n in range(count):
        if n == 25:
            text, verdict = BROKEN, "could-not-analyse"
        elif n % 10 == 3:
            text, verdict = KILLABLE, "refused"
        else:
            text, verdict = CLEAN, "accepted"
        path = folder / f"T{n}.sol"
        path.write_text(text.format(n=n))
        expected[str(path.resolve())] = verdict
        lines.append(path.name)
    listing = folder / "batch.txt"
    listing.write_text("\n".join(lines) + "\n")
    return listing, expected


@pytest.mark.slow
@pytest.mark.timeout(900)  # about 30 s on a quiet 2-core machine; far more when it is shared
@pytest.mark.xdist_group("dask-batch")
def test_fifty_contracts_on_a_two_worker_local_cluster(tmp_path, capsys):
    listing, expected = make_corpus(tmp_path / "corpus")
    seen = []
    report = run_batch(read_targets(listing), policy=Policy(), workers=2, on_result=seen.append)
    assert report.workers == 2
    assert len(report.items) == 50
    assert len(seen) == 50  # progress: one call per finished target
    assert {i.target: i.verdict for i in report.items} == expected
    assert [i.target for i in report.items] == list(expected)  # listed order kept
    assert report.counts() == {"accepted": 44, "refused": 5, "could-not-analyse": 1, "error": 0}
    assert len({i.worker for i in report.items}) == 2  # both workers did work
    assert all(i.findings == 1 for i in report.items if i.verdict == "refused")
    assert report.exit_code == 1

    # The CLI on part of the same corpus: the workers share the cache, so Slither is
    # not run again; --json is one document, progress goes to stderr.
    small = tmp_path / "corpus" / "small.txt"
    small.write_text("T0.sol\nT3.sol\n")
    code = main(["vet", "--batch", str(small), "--workers", "1", "--json"])
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert code == 1
    assert out["counts"]["accepted"] == 1
    assert out["counts"]["refused"] == 1
    assert all(item["cached"] for item in out["batch"]["items"])
    assert "[2/2]" in captured.err


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("argv", "code", "words"),
    [
        (lambda d: ["vet", "--batch", str(d / "nope.txt")], 2, "is not a file"),
        (
            lambda d: ["vet", "--batch", str(d / "missing.txt")],
            2,
            "line 2: Gone.sol does not exist",
        ),
        (lambda d: ["vet", "--batch", str(d / "empty.txt")], 2, "lists no target"),
        (lambda d: ["vet", str(d / "A.sol"), "--batch", str(d / "ok.txt")], 2, "not both"),
        (
            lambda d: ["vet", "--batch", str(d / "ok.txt"), "--scheduler", "http://x:1"],
            2,
            "not a Dask address",
        ),
        (lambda d: ["vet", "--batch", str(d / "ok.txt"), "--workers", "0"], 2, "--workers"),
        (lambda d: ["vet", str(d / "A.sol"), "--scheduler", "tcp://h:1"], 2, "for --batch"),
    ],
)
def test_bad_batch_input_is_one_sentence_and_exit_2(tmp_path, capsys, argv, code, words):
    (tmp_path / "A.sol").write_text("pragma solidity =0.6.6;\ncontract A {}\n")
    (tmp_path / "ok.txt").write_text("A.sol\n")
    (tmp_path / "missing.txt").write_text("A.sol\nGone.sol\n")
    (tmp_path / "empty.txt").write_text("# nothing\n\n")
    assert main([*argv(tmp_path), "--json"]) == code
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False
    assert words in out["error"]["message"]


@pytest.mark.slow
def test_an_unreachable_scheduler_is_an_infrastructure_error(tmp_path, capsys):
    (tmp_path / "A.sol").write_text("pragma solidity =0.6.6;\ncontract A {}\n")
    (tmp_path / "ok.txt").write_text("A.sol\n")
    address = f"tcp://127.0.0.1:{_closed_port()}"
    code = main(["vet", "--batch", str(tmp_path / "ok.txt"), "--scheduler", address, "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 3
    assert address in out["error"]["message"]
