"""Compile Solidity with the project's solcjs wrapper (the same one Slither calls).

The compiler comes from the toolchain or, installed on first use, from the cache of
`defiagent.vetting.compilers`; the wrapper is told which package folder to load."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterable
from pathlib import Path

from defiagent.errors import InfraError
from defiagent.toolchain import solc_wrapper_path
from defiagent.vetting.bundle import pragma_ranges
from defiagent.vetting.compilers import CompileError, choose_version, ensure_compiler

__all__ = ["CompileError", "compile_standard_json", "select_version", "solc_env"]


def solc_env(version: str | None = None, include: Iterable[Path] = ()) -> dict[str, str]:
    """The wrapper's environment: which compiler (installed on demand) and extra import roots."""
    env = dict(os.environ)
    env.pop("DEFIAGENT_SOLC_PACKAGE", None)
    if version:
        env["DEFIAGENT_SOLC_VERSION"] = version
        env["DEFIAGENT_SOLC_PACKAGE"] = str(ensure_compiler(version))
    else:
        env.pop("DEFIAGENT_SOLC_VERSION", None)
    paths = [str(Path(p).resolve()) for p in include]
    if paths:
        env["DEFIAGENT_SOLC_INCLUDE"] = os.pathsep.join(paths)
    return env


def select_version(files: Iterable[Path]) -> str:
    """The solcjs every `pragma solidity` in the files accepts (installed on first use)."""
    return select_for_sources(Path(f).read_text() for f in files)


def select_for_sources(texts: Iterable[str]) -> str:
    pragmas = [r for text in texts for r in pragma_ranges(text)]
    version = choose_version(pragmas)
    ensure_compiler(version)
    return version


def compile_standard_json(
    standard_input: dict,
    *,
    version: str | None = None,
    cwd: Path | None = None,
    include: Iterable[Path] = (),
) -> dict:
    """Run solc --standard-json; raise CompileError on any error-severity message."""
    proc = subprocess.run(
        [str(solc_wrapper_path()), "--standard-json"],
        input=json.dumps(standard_input),
        capture_output=True,
        text=True,
        cwd=str(cwd) if cwd else None,
        env=solc_env(version, include),
        check=False,
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        raise InfraError(f"solc failed: {proc.stderr.strip() or 'no output'}")
    output = json.loads(proc.stdout)
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        first = errors[0].get("formattedMessage") or errors[0].get("message")
        raise CompileError(f"compilation failed: {first.strip().splitlines()[0]}")
    return output


def standard_input(
    sources: dict[str, str],
    *,
    optimizer_runs: int | None = 200,
    evm_version: str | None = None,
    outputs: tuple[str, ...] = (
        "abi",
        "evm.bytecode.object",
        "evm.deployedBytecode.object",
        "evm.deployedBytecode.immutableReferences",
        "metadata",
    ),
) -> dict:
    """A standard-JSON input for in-memory sources (unit name -> source text)."""
    settings: dict = {"outputSelection": {"*": {"*": list(outputs)}}}
    if optimizer_runs is not None:
        settings["optimizer"] = {"enabled": True, "runs": optimizer_runs}
    if evm_version:
        settings["evmVersion"] = evm_version
    return {
        "language": "Solidity",
        "sources": {name: {"content": text} for name, text in sources.items()},
        "settings": settings,
    }
