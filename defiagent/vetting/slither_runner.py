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
from pathlib import Path

from defiagent.errors import ConfigError, InfraError, ToolMissing
from defiagent.toolchain import REMEDY, solc_wrapper_path
from defiagent.vetting.solc import select_version, solc_env


def slither_executable() -> Path:
    # Prefer the one installed next to this interpreter (the project's venv).
    beside = Path(sys.executable).parent / "slither"
    if beside.is_file():
        return beside
    found = shutil.which("slither")
    if not found:
        raise ToolMissing("slither is not installed", remedy=REMEDY)
    return Path(found)


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
        work = Path(tmp)
        if target.is_file():
            # crytic-compile sends a lone file through --combined-json, which solcjs lacks:
            # stage it in a folder of its own; its real folder still serves its imports.
            staged = work / "src"
            staged.mkdir()
            shutil.copy2(target, staged / target.name)
            cwd, slither_target, include = work, "src", [target.parent]
        else:
            cwd, slither_target, include = target, ".", [target]
        out = work / "slither.json"
        argv = [
            str(slither_executable()),
            slither_target,
            "--solc-standard-json",
            "--solc",
            str(solc_wrapper_path()),
            "--json",
            str(out),
            "--disable-color",
            *extra_args,
        ]
        env = solc_env(version, include)
        env["PYTHONWARNINGS"] = "ignore"
        export = work / "crytic-export"
        try:
            proc = subprocess.run(
                argv,
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise InfraError(f"Slither did not finish within {timeout:.0f}s") from exc
        finally:
            # crytic-compile leaves crytic-export/ in the cwd; never litter the user's tree.
            if target.is_dir():
                shutil.rmtree(target / "crytic-export", ignore_errors=True)
            shutil.rmtree(export, ignore_errors=True)
        if not out.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise InfraError(f"Slither failed on {target.name}: {tail[0]}")
        result = json.loads(out.read_text())
    if not result.get("success"):
        error = (result.get("error") or "unknown error").strip().splitlines()[-1]
        raise ConfigError(f"Slither could not analyse {target.name}: {error}")
    result["solc_version"] = version
    result["slither_version"] = _slither_version()
    return result


_VERSION: str | None = None


def _slither_version() -> str:
    global _VERSION
    if _VERSION is None:
        from importlib.metadata import version

        _VERSION = version("slither-analyzer")
    return _VERSION
