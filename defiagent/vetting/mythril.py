"""Mythril, the second analyzer: symbolic execution of the runtime bytecode, time-bounded.

Mythril lives in a virtual environment of its own (`.venv-mythril`, made by
scripts/bootstrap: it pins an eth-* stack that clashes with web3 7), so it is called as a
program. It runs on the runtime bytecode, the code that is (or will be) deployed,
whatever the sources say. Its execution timeout ends the exploration with what was found
so far: a result. A run that crashes or overruns the hard limit gives no result: the
verdict is then "could not analyse". Results are cached by codehash, Mythril version and
timeout. Only high-severity issues fail the gate; the others are reported.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from functools import cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from defiagent.allowlist.models import MythrilSummary
from defiagent.cache import cache_dir
from defiagent.errors import ToolMissing
from defiagent.toolchain import repo_root
from defiagent.vetting.verdict import CouldNotAnalyse

FAILING_SEVERITY = "High"
STARTUP_ALLOWANCE = 90  # seconds on top of the execution timeout: start, solver, output


class MythrilIssue(BaseModel):
    model_config = ConfigDict(frozen=True)

    swc_id: str
    title: str
    severity: str
    function: str = ""
    address: int | None = None  # program counter in the runtime code
    description: str = ""

    def label(self) -> str:
        where = f" in {self.function}" if self.function else ""
        return f"SWC-{self.swc_id} {self.title} ({self.severity}){where}"


class MythrilResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    contract: str  # what was analysed: "unit:Name" or the code's label
    codehash: str
    mythril_version: str
    execution_timeout: int
    issues: list[MythrilIssue]
    cached: bool = False

    @property
    def failing(self) -> list[MythrilIssue]:
        return [i for i in self.issues if i.severity == FAILING_SEVERITY]

    def summary(self) -> MythrilSummary:
        """The record a bytecode-only entry keeps (and its reviewers sign)."""
        return MythrilSummary(
            mythril_version=self.mythril_version,
            execution_timeout=self.execution_timeout,
            codehash=self.codehash,
            high=[i.label() for i in self.failing],
            other=len(self.issues) - len(self.failing),
        )


def myth_path() -> Path | None:
    """The `myth` program: DEFIAGENT_MYTH, else .venv-mythril's; None when not installed."""
    env = os.environ.get("DEFIAGENT_MYTH")
    path = Path(env) if env else repo_root() / ".venv-mythril" / "bin" / "myth"
    return path if path.is_file() and os.access(path, os.X_OK) else None


@cache
def _version(path: Path) -> str:
    # Read from the venv's metadata: `myth version` costs a few seconds of imports.
    site = next(path.parent.parent.glob("lib/python*/site-packages"), None)
    if site is not None:
        for meta in site.glob("mythril-*.dist-info/METADATA"):
            for line in meta.read_text().splitlines():
                if line.startswith("Version: "):
                    return line.removeprefix("Version: ").strip()
    return "unknown"


def mythril_version() -> str | None:
    path = myth_path()
    return _version(path) if path else None


def require_myth(why: str = "the policy requires it") -> Path:
    path = myth_path()
    if path is None:
        raise ToolMissing(
            f"Mythril is not installed, and {why}",
            remedy="run `scripts/bootstrap` (it installs .venv-mythril)",
        )
    return path


def _cache_file(codehash: str, version: str, timeout: int) -> Path:
    name = hashlib.sha256(f"{codehash.lower()}\0{version}\0{timeout}".encode()).hexdigest()
    return cache_dir("mythril") / f"{name}.json"


def analyse_runtime(
    runtime_hex: str, *, contract: str, codehash: str, execution_timeout: int
) -> MythrilResult:
    """Mythril's issues for one runtime code (cached)."""
    myth = require_myth()
    version = _version(myth)
    cached = _cache_file(codehash, version, execution_timeout)
    if cached.is_file():
        result = MythrilResult.model_validate_json(cached.read_text())
        return result.model_copy(update={"cached": True, "contract": contract})
    issues = _run(myth, runtime_hex, contract, execution_timeout)
    result = MythrilResult(
        contract=contract,
        codehash=codehash,
        mythril_version=version,
        execution_timeout=execution_timeout,
        issues=issues,
    )
    tmp = cached.with_name(f".{cached.name}.{os.getpid()}.tmp")
    tmp.write_text(result.model_dump_json())
    tmp.replace(cached)
    return result


def _run(myth: Path, runtime_hex: str, contract: str, timeout: int) -> list[MythrilIssue]:
    with tempfile.TemporaryDirectory(prefix="defiagent-mythril-") as tmp:
        code = Path(tmp) / "runtime.hex"
        code.write_text(runtime_hex.removeprefix("0x"))
        argv = [
            str(myth),
            "analyze",
            "--bin-runtime",
            "-f",
            str(code),
            "--execution-timeout",
            str(timeout),
            "--solver-timeout",
            "10000",
            "-t",
            "2",  # transactions deep: enough for the usual one- and two-call exploits
            "-o",
            "json",
        ]
        # Mythril writes its own caches under HOME; keep them in the run's folder.
        env = {**os.environ, "HOME": tmp, "PYTHONWARNINGS": "ignore"}
        try:
            proc = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=timeout + STARTUP_ALLOWANCE,
                env=env,
                cwd=tmp,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise CouldNotAnalyse(
                f"Mythril did not finish on {contract} within {timeout + STARTUP_ALLOWANCE}s"
            ) from exc
    try:
        out = json.loads(proc.stdout)
    except ValueError:
        lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        detail = lines[-1].strip() if lines else f"exit {proc.returncode}, no output"
        raise CouldNotAnalyse(f"Mythril failed on {contract}: {detail}") from None
    if not out.get("success", False):
        detail = " ".join(str(out.get("error") or "unknown error").split())[:300]
        raise CouldNotAnalyse(f"Mythril failed on {contract}: {detail}")
    return [
        MythrilIssue(
            swc_id=str(i.get("swc-id") or ""),
            title=str(i.get("title") or ""),
            severity=str(i.get("severity") or ""),
            function=str(i.get("function") or ""),
            address=i.get("address") if isinstance(i.get("address"), int) else None,
            description=" ".join(str(i.get("description") or "").split())[:400],
        )
        for i in out.get("issues") or []
    ]
