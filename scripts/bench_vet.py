"""Vetting cost: a first vet against bare Slither on the same sources, and batch throughput.

* first vet: `vet_sources` with empty caches (compile once, Slither on that output,
  defiagent's detectors; Mythril off), against the bare `slither` program compiling the
  same sources itself through the same solcjs wrapper with the same optimizer settings. Median of --repeat runs each.
  The target of the issue: a first vet costs at most 1.1 times bare Slither.
* batch: --batch N tiny contracts with empty caches on a LocalCluster of 1 and of 2
  workers (cluster start included), in contracts per second.

  .venv/bin/python scripts/bench_vet.py [--repeat 3] [--batch 20] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from defiagent.allowlist.policy import Policy
from defiagent.toolchain import node_modules, solc_wrapper_path
from defiagent.vetting.batch import run_batch
from defiagent.vetting.solc import select_version, solc_env
from defiagent.vetting.vet import vet_sources

SMALL = """// SPDX-License-Identifier: MIT
pragma solidity ^0.8.0;
contract Vault {
    mapping(address => uint256) public balance;
    function deposit() external payable { balance[msg.sender] += msg.value; }
    function withdraw(uint256 amount) external {
        require(balance[msg.sender] >= amount, "low");
        (bool ok, ) = msg.sender.call{value: amount}("");
        require(ok, "send");
        balance[msg.sender] -= amount;
    }
}
"""
TINY = (
    "// SPDX-License-Identifier: MIT\npragma solidity =0.6.6;\n"
    "contract T{n} {{ uint256 public x; function set(uint256 v) external {{ x = v + {n}; }} }}\n"
)


def fresh_cache() -> str:
    path = tempfile.mkdtemp(prefix="bench-vet-cache-")
    os.environ["DEFIAGENT_CACHE_DIR"] = path
    return path


def first_vet(target: Path) -> float:
    fresh_cache()
    start = time.perf_counter()
    report = vet_sources(target, policy=Policy()).report
    elapsed = time.perf_counter() - start
    assert report.slither is not None, report.outcomes  # it really analysed
    return elapsed


def bare_slither(target: Path) -> float:
    files = [target] if target.is_file() else sorted(target.glob("*.sol"))
    version = select_version(files)
    cwd = target.parent if target.is_file() else target
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        argv = [str(Path(sys.executable).parent / "slither"), "."]
        argv += ["--solc-standard-json", "--solc", str(solc_wrapper_path()), "--json", str(out)]
        # The same compiler settings as vetting (which must reproduce deployed bytecode):
        # crytic-compile's default leaves the optimizer off, a cheaper, different compile.
        argv += ["--solc-args", "--optimize --optimize-runs 200"]
        env = {**solc_env(version, [cwd]), "PYTHONWARNINGS": "ignore"}
        if target.is_file():  # crytic-compile globs the folder: give it a folder of one
            single = Path(tmp) / "src"
            single.mkdir()
            (single / target.name).write_text(target.read_text())
            cwd = single
        start = time.perf_counter()
        subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=False)
        elapsed = time.perf_counter() - start
        assert json.loads(out.read_text())["success"]
        export = cwd / "crytic-export"
        if export.exists() and cwd != target.parent:
            subprocess.run(["rm", "-rf", str(export)], check=False)
    return elapsed


def batch(count: int, workers: int) -> dict:
    fresh_cache()
    with tempfile.TemporaryDirectory(prefix="bench-vet-batch-") as tmp:
        targets = []
        for n in range(count):
            path = Path(tmp) / f"T{n}_{workers}.sol"
            path.write_text(TINY.format(n=n + 1000 * workers))
            targets.append(str(path))
        start = time.perf_counter()
        report = run_batch(targets, policy=Policy(), workers=workers)
        elapsed = time.perf_counter() - start
    assert len(report.items) == count
    return {
        "workers": workers,
        "contracts": count,
        "seconds": elapsed,
        "per_second": count / elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    console = Console(stderr=True)

    with tempfile.TemporaryDirectory(prefix="bench-vet-src-") as tmp:
        small = Path(tmp) / "Vault.sol"
        small.write_text(SMALL)
        corpora = {
            "Vault.sol (1 file, 0.8.37)": small,
            "Uniswap V2 core (11 files, 0.5.16)": node_modules() / "@uniswap/v2-core/contracts",
        }
        first_rows = []
        for label, target in corpora.items():
            first_vet(target)  # warm the OS file cache and the on-demand compiler, untimed
            vet_times = [first_vet(target) for _ in range(args.repeat)]
            bare_times = [bare_slither(target) for _ in range(args.repeat)]
            vet_s, bare_s = statistics.median(vet_times), statistics.median(bare_times)
            first_rows.append(
                {
                    "sources": label,
                    "first_vet_s": vet_s,
                    "bare_slither_s": bare_s,
                    "ratio": vet_s / bare_s,
                }
            )
    batch_rows = [batch(args.batch, w) for w in (1, 2)]

    table = Table(title=f"first vet against bare Slither (median of {args.repeat})")
    for col in ("sources", "first vet (s)", "bare Slither (s)", "ratio (target <= 1.1)"):
        table.add_column(col)
    for r in first_rows:
        table.add_row(
            r["sources"],
            f"{r['first_vet_s']:.2f}",
            f"{r['bare_slither_s']:.2f}",
            f"{r['ratio']:.2f}",
        )
    console.print(table)
    table = Table(title=f"batch vetting, {args.batch} tiny contracts, empty caches, LocalCluster")
    for col in ("workers", "seconds", "contracts/s"):
        table.add_column(col)
    for r in batch_rows:
        table.add_row(str(r["workers"]), f"{r['seconds']:.1f}", f"{r['per_second']:.2f}")
    console.print(table)
    console.print(
        f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f} (figures are indicative)"
    )
    if args.json:
        args.json.write_text(json.dumps({"first_vet": first_rows, "batch": batch_rows}, indent=1))


if __name__ == "__main__":
    main()
