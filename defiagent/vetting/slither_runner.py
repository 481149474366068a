"""Run Slither through the project's solcjs wrapper and return its JSON result.

Slither exits 255 when it has findings: that is a result, not a crash. A run is a failure
only when its JSON says so (or there is none).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from defiagent.errors import ConfigError, InfraError
from defiagent.toolchain import solc_wrapper_path
from defiagent.vetting.bundle import SourceBundle
from defiagent.vetting.slither_cli import WITH_DETECTORS
from defiagent.vetting.solc import select_version, solc_env


def _sol_files(target: Path) -> list[Path]:
    if target.is_file():
        return [target]
    return sorted(
        p for p in target.rglob("*.sol") if "node_modules" not in p.relative_to(target).parts
    )


def run_slither(
    target: Path,
    *,
    solc_version: str | None = None,
    extra_args: tuple[str, ...] = (),
    timeout: float = 600,
) -> dict:
    """Slither's JSON output for a folder of sources or a single .sol file."""
    target = Path(target).resolve()
    if not target.exists():
        raise ConfigError(f"{target} does not exist")
    files = _sol_files(target)
    if not files:
        raise ConfigError(f"{target} holds no .sol file")
    version = solc_version or select_version(files)
    with tempfile.TemporaryDirectory(prefix="defiagent-slither-") as tmp:
        only: list[str] = []
        if target.is_file():
            # Analyse just this file, from its real folder (so its imports resolve there).
            cwd = target.parent
            only = [target.name]
        else:
            cwd = target
            if not any(target.glob("*.sol")):
                # crytic-compile looks at the top of the folder only; hand it the tree.
                only = [str(f.relative_to(target)) for f in files]
        export = cwd / "crytic-export"
        had_export = export.exists()
        try:
            result = _invoke(
                ".",
                cwd=cwd,
                env=solc_env(version, [cwd]),
                only=only,
                out=Path(tmp) / "slither.json",
                name=target.name,
                timeout=timeout,
                extra_args=extra_args,
            )
        finally:
            # crytic-compile leaves crytic-export/ in the cwd; never litter the user's tree.
            if not had_export:
                shutil.rmtree(export, ignore_errors=True)
    result["solc_version"] = version
    result["slither_version"] = _slither_version()
    return result


def _invoke(
    target: str,
    *,
    cwd: Path,
    env: dict[str, str],
    out: Path,
    name: str,
    timeout: float,
    extra_args: tuple[str, ...] = (),
    custom_detectors: bool = False,
    only: Sequence[str] = (),
) -> dict:
    """Run Slither (slither_cli) on `target` from `cwd`; its JSON result, or a clear error.

    `only` limits the analysis to those files of `cwd` (see slither_cli)."""
    argv = [sys.executable, "-m", "defiagent.vetting.slither_cli"]
    if custom_detectors:
        argv.append(WITH_DETECTORS)
    argv += [target, "--solc-standard-json", "--solc", str(solc_wrapper_path())]
    argv += ["--json", str(out), "--disable-color", *extra_args]
    env = {**env, "PYTHONWARNINGS": "ignore", "DEFIAGENT_SLITHER_ONLY": os.pathsep.join(only)}
    try:
        proc = subprocess.run(
            argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise InfraError(f"Slither did not finish within {timeout:.0f}s") from exc
    if not out.exists():
        raise _failure(Path(name), proc.stderr or proc.stdout or "")
    result = json.loads(out.read_text())
    if not result.get("success"):
        error = (result.get("error") or "unknown error").strip().splitlines()[-1]
        raise ConfigError(f"Slither could not analyse {name}: {error}")
    return result


_VERSION: str | None = None


def _slither_version() -> str:
    global _VERSION
    if _VERSION is None:
        from importlib.metadata import version

        _VERSION = version("slither-analyzer")
    return _VERSION


def _failure(target: Path, output: str):
    """Turn Slither's crash output into one sentence; bad sources are the user's to fix."""
    for line in output.splitlines():
        if "InvalidCompilation:" in line:
            detail = line.split("InvalidCompilation:", 1)[1].strip()
            # solc repeats the error kind ("ParserError: ParserError: ..."): keep one.
            parts = detail.split(": ")
            if len(parts) > 2 and parts[0] == parts[1]:
                detail = ": ".join(parts[1:])
            return ConfigError(f"{target.name} does not compile: {detail}")
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    last = next((line for line in reversed(lines) if "Error" in line), lines[-1] if lines else "")
    return InfraError(f"Slither failed on {target.name}: {last or 'no output'}")


# ------------------------------------------------------------- source bundles

ROOTS_DIR = "__defiagent_roots__"


def run_slither_bundle(
    bundle: SourceBundle,
    *,
    solc_version: str,
    custom_detectors: bool = True,
    timeout: float = 600,
) -> dict:
    """Slither over exactly the units of a bundle (the code a deployment was built from).

    Every unit is staged at its own unit name, so finding ids and file names match the
    author's; one generated file imports the roots, so crytic-compile (which only globs
    the top of a folder) compiles them all in one standard-JSON run.
    """
    with tempfile.TemporaryDirectory(prefix="defiagent-slither-") as tmp:
        work = Path(tmp)
        units = work / "units"
        units.mkdir()
        bundle.stage(units)
        roots_dir = units / ROOTS_DIR
        roots_dir.mkdir()
        (roots_dir / "roots.sol").write_text(
            "// SPDX-License-Identifier: UNLICENSED\n"
            "// Generated by defiagent: imports the units under analysis.\n"
            + "".join(f'import "{unit}";\n' for unit in bundle.roots)
        )
        name = Path(bundle.roots[0]).name if bundle.roots else "the sources"
        result = _invoke(
            ROOTS_DIR,
            cwd=units,
            env=solc_env(solc_version, [units]),
            out=work / "slither.json",
            name=name,
            timeout=timeout,
            custom_detectors=custom_detectors,
        )
    detectors = (result.get("results") or {}).get("detectors") or []
    result.setdefault("results", {})["detectors"] = [
        d for d in detectors if not _only_in(d, ROOTS_DIR + "/")
    ]
    result["solc_version"] = solc_version
    result["slither_version"] = _slither_version()
    return result


def _only_in(finding: dict, prefix: str) -> bool:
    files = {
        (e.get("source_mapping") or {}).get("filename_relative", "")
        for e in finding.get("elements") or []
    }
    return bool(files) and all(f.startswith(prefix) for f in files)
