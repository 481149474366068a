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
from collections.abc import Callable, Sequence
from pathlib import Path

from defiagent.errors import ConfigError, DefiagentError
from defiagent.toolchain import solc_wrapper_path
from defiagent.vetting.bundle import SourceBundle
from defiagent.vetting.slither_cli import WITH_DETECTORS
from defiagent.vetting.solc import CompileError, select_version, solc_env
from defiagent.vetting.verdict import CouldNotAnalyse


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
    meanwhile: Callable[[], None] | None = None,
) -> dict:
    """Run Slither (slither_cli) on `target` from `cwd`; its JSON result, or a clear error.

    `only` limits the analysis to those files of `cwd` (see slither_cli). `meanwhile` runs
    here while the child starts (it compiles the output the child waits for); if it
    raises, the child is killed and the error goes on."""
    argv = [sys.executable, "-m", "defiagent.vetting.slither_cli"]
    if custom_detectors:
        argv.append(WITH_DETECTORS)
    argv += [target, "--solc-standard-json", "--solc", str(solc_wrapper_path())]
    argv += ["--json", str(out), "--disable-color", *extra_args]
    env = {**env, "PYTHONWARNINGS": "ignore", "DEFIAGENT_SLITHER_ONLY": os.pathsep.join(only)}
    with subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            if meanwhile is not None:
                meanwhile()
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            proc.kill()
            proc.communicate()
            raise CouldNotAnalyse(f"Slither did not finish within {timeout:.0f}s") from exc
        except BaseException:
            proc.kill()
            proc.communicate()
            raise
    if not out.exists():
        raise _failure(Path(name), stderr or stdout or "")
    try:
        result = json.loads(out.read_text())
    except ValueError as exc:
        raise CouldNotAnalyse(f"Slither wrote unreadable JSON for {name}") from exc
    if not result.get("success"):
        error = (result.get("error") or "unknown error").strip().splitlines()[-1]
        raise CouldNotAnalyse(f"Slither could not analyse {name}: {error}")
    return result


_VERSION: str | None = None


def _slither_version() -> str:
    global _VERSION
    if _VERSION is None:
        from importlib.metadata import version

        _VERSION = version("slither-analyzer")
    return _VERSION


def _failure(target: Path, output: str) -> DefiagentError:
    """Turn Slither's crash output into one sentence: sources that do not compile, or an
    analyser failure (a verdict of its own, not an infrastructure error)."""
    for line in output.splitlines():
        if "InvalidCompilation:" in line:
            detail = line.split("InvalidCompilation:", 1)[1].strip()
            # solc repeats the error kind ("ParserError: ParserError: ..."): keep one.
            parts = detail.split(": ")
            if len(parts) > 2 and parts[0] == parts[1]:
                detail = ": ".join(parts[1:])
            return CompileError(f"{target.name} does not compile: {detail}")
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    last = next((line for line in reversed(lines) if "Error" in line), lines[-1] if lines else "")
    return CouldNotAnalyse(f"Slither failed on {target.name}: {last or 'no output'}")


# ------------------------------------------------------------- source bundles

ROOTS_DIR = "__defiagent_roots__"


def run_slither_bundle(
    bundle: SourceBundle,
    *,
    solc_version: str | None = None,
    custom_detectors: bool = True,
    timeout: float = 600,
) -> dict:
    """Slither over exactly the units of a bundle (the code a deployment was built from).

    Compiled once: Slither reads the standard-JSON output vetting's own compile produced
    (compiler.compiler_output, cached), so the sources are not compiled a second time.
    Every unit is staged at its own unit name, so finding ids and file names match the
    author's and Slither can read the source text its findings point into.
    """
    from defiagent.vetting.compiler import compile_bundle, output_path, resolve_version

    if solc_version is not None and bundle.settings.version is None:
        bundle = bundle.with_settings(bundle.settings.model_copy(update={"version": solc_version}))
    version = resolve_version(bundle)
    output = output_path(bundle, version)
    pending = not output.is_file()

    def compile_meanwhile() -> None:
        # Slither's child process loads its (heavy) modules while solc compiles here.
        compile_bundle(bundle)
        _require_asts(output, bundle)

    if not pending:
        _require_asts(output, bundle)
    with tempfile.TemporaryDirectory(prefix="defiagent-slither-") as tmp:
        work = Path(tmp)
        units = work / "units"
        units.mkdir()
        roots = bundle.stage(units)
        name = Path(bundle.roots[0]).name if bundle.roots else "the sources"
        env = solc_env(version, [units])
        env["DEFIAGENT_SOLC_OUTPUT"] = str(output)
        if pending:
            env["DEFIAGENT_SOLC_OUTPUT_WAIT"] = "1"
        result = _invoke(
            ".",
            cwd=units,
            env=env,
            out=work / "slither.json",
            name=name,
            timeout=timeout,
            custom_detectors=custom_detectors,
            only=[str(r.relative_to(units)) for r in roots] or list(bundle.sources)[:1],
            meanwhile=compile_meanwhile if pending else None,
        )
    detectors = (result.get("results") or {}).get("detectors") or []
    result.setdefault("results", {})["detectors"] = [
        d for d in detectors if not _only_in(d, ROOTS_DIR + "/")
    ]
    result["solc_version"] = version
    result["slither_version"] = _slither_version()
    return result


def _require_asts(output: Path, bundle: SourceBundle) -> None:
    """Fail closed: Slither given a unit without its AST analyses nothing and finds nothing."""
    try:
        sources = json.loads(output.read_text()).get("sources") or {}
    except ValueError as exc:
        raise CouldNotAnalyse(f"the stored compiler output {output.name} is unreadable") from exc
    missing = sorted(u for u in bundle.sources if (sources.get(u) or {}).get("ast") is None)
    if missing:
        raise CouldNotAnalyse(
            f"the compiler gave no syntax tree for {', '.join(missing[:3])}: Slither would "
            "analyse nothing"
        )


def _only_in(finding: dict, prefix: str) -> bool:
    files = {
        (e.get("source_mapping") or {}).get("filename_relative", "")
        for e in finding.get("elements") or []
    }
    return bool(files) and all(f.startswith(prefix) for f in files)
