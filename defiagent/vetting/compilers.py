"""Solidity compilers on demand: the solcjs a pragma needs, installed from npm on first use.

The toolchain (scripts/toolchain, pinned by its package-lock) ships a few compilers; any
other release of the npm package `solc` from 0.4.11 on (the first with standard JSON) is
installed into a cache of its own, once, the way solc-select does it for native builds,
but from the npm registry alone: `npm install` checks the tarball against the registry's
integrity hash, and the hash is kept beside the compiler so `doctor` can show it and a
later edit of soljson.js is caught. Two processes asking for the same version at once
take a file lock; the second finds it installed.

Version choice: the newest toolchain compiler every pragma accepts wins, so vetting stays
offline and repeatable for everything the toolchain pins; only when none fits is the
registry asked for the newest release that does. What happens to be cached never changes
the choice.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict
from semantic_version import NpmSpec, Version  # type: ignore[import-untyped]

from defiagent.errors import ConfigError, ToolMissing
from defiagent.toolchain import node_modules, solc_versions

FIRST_STANDARD_JSON = Version("0.4.11")  # 0.4.9 and 0.4.10 have no standard-JSON interface
REGISTRY_LIST_TTL = 24 * 3600  # seconds a cached list of published versions is trusted
MANIFEST = "defiagent-solc.json"
NPM_TIMEOUT = 300


class CompileError(ConfigError):
    """The sources do not compile, or no compiler can compile them."""


class CachedCompiler(BaseModel):
    """A compiler installed on demand (what `doctor` lists)."""

    model_config = ConfigDict(frozen=True)

    version: str
    package_dir: str  # the npm package folder holding soljson.js
    integrity: str  # the registry's integrity hash of the tarball npm verified
    soljson_sha256: str  # of soljson.js as installed
    installed_at: float


def cache_root() -> Path:
    """Where on-demand compilers live: DEFIAGENT_SOLC_CACHE, else the user's XDG cache.

    Not under DEFIAGENT_CACHE_DIR (derived data, per test session): a compiler is a
    download, kept across sessions so each version is fetched once per machine."""
    base = os.environ.get("DEFIAGENT_SOLC_CACHE")
    if base:
        root = Path(base)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = Path(xdg) / "defiagent" / "solc"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _version_dir(version: str) -> Path:
    return cache_root() / version


def _manifest(version: str) -> CachedCompiler | None:
    path = _version_dir(version) / MANIFEST
    if not path.is_file():
        return None
    try:
        return CachedCompiler.model_validate_json(path.read_text())
    except ValueError:
        return None


def cached_compilers() -> list[CachedCompiler]:
    """Every complete on-demand install, oldest version first."""
    root = cache_root()
    found = [_manifest(d.name) for d in root.iterdir() if d.is_dir() and _is_version(d.name)]
    return sorted((c for c in found if c is not None), key=lambda c: Version(c.version))


def _is_version(text: str) -> bool:
    try:
        Version(text)
    except ValueError:
        return False
    return True


def installed_versions() -> dict[str, Path]:
    """version -> solc package folder, for the toolchain's compilers and the cached ones."""
    out = {c.version: Path(c.package_dir) for c in cached_compilers()}
    for version, folder in solc_versions().items():
        out[version] = node_modules() / folder
    return out


def package_dir(version: str) -> Path | None:
    """The solc package folder for an installed version (toolchain or cache)."""
    if version in solc_versions():
        return node_modules() / solc_versions()[version]
    cached = _manifest(version)
    return Path(cached.package_dir) if cached else None


# ------------------------------------------------------------------ choosing a version


def _spec(pragma: str) -> NpmSpec:
    # solc accepts "^0.4.11", ">=0.4.22 <0.6.0", "0.5.16", "= 0.5.16", ">= 0.4.0"; npm
    # ranges want no space between an operator and its version.
    text = " ".join(pragma.split())
    for op in (">=", "<=", "^", "~", ">", "<", "="):
        text = text.replace(f"{op} ", op)
    try:
        return NpmSpec(text)
    except ValueError as exc:
        raise CompileError(f"pragma solidity {pragma!r} is not a version range") from exc


def satisfying(versions: Iterable[str], pragmas: Iterable[str]) -> list[str]:
    """The versions every pragma accepts, newest first (pre-releases never)."""
    specs = [_spec(p) for p in pragmas]
    parsed = []
    for v in versions:
        try:
            version = Version(v)
        except ValueError:
            continue
        if not version.prerelease and all(version in s for s in specs):
            parsed.append(version)
    return [str(v) for v in sorted(parsed, reverse=True)]


def registry_versions(*, refresh: bool = False) -> list[str]:
    """Published versions of the npm package `solc` (cached for a day)."""
    path = cache_root() / "registry-versions.json"
    if not refresh and path.is_file() and time.time() - path.stat().st_mtime < REGISTRY_LIST_TTL:
        return list(json.loads(path.read_text()))
    try:
        proc = _npm(["view", "solc", "versions", "--json"], cwd=cache_root())
    except ToolMissing:
        if path.is_file():  # offline: an old list still names real releases
            return list(json.loads(path.read_text()))
        raise
    try:
        versions = json.loads(proc.stdout)
    except ValueError as exc:
        raise ToolMissing("npm answered nonsense when asked for the solc versions") from exc
    if not isinstance(versions, list) or not all(isinstance(v, str) for v in versions):
        raise ToolMissing("npm answered nonsense when asked for the solc versions")
    _write_atomic(path, json.dumps(versions))
    return versions


def choose_version(pragmas: list[str]) -> str:
    """The compiler for sources with these pragma ranges: the newest toolchain compiler
    that fits, else the newest published release that does (installed on first use).
    Never "whatever happens to be cached": the choice must not depend on the machine."""
    local = satisfying(solc_versions(), pragmas)
    if local:
        return local[0]
    published = satisfying(registry_versions(), pragmas)
    usable = [v for v in published if Version(v) >= FIRST_STANDARD_JSON]
    ranges = json.dumps(sorted(set(pragmas)))
    if usable:
        return usable[0]
    if published:
        raise CompileError(
            f"the pragmas {ranges} need solc {published[0]}, older than 0.4.11 (the first with "
            "standard JSON): such old compilers are not supported"
        )
    exact = [p for p in pragmas if _is_version(p.strip().lstrip("="))]
    hint = f" (npm has no release {exact[0].strip().lstrip('=')})" if exact else ""
    raise CompileError(f"no published solc satisfies the pragmas {ranges}{hint}")


# ------------------------------------------------------------------ installing


def _npm(args: list[str], *, cwd: Path) -> subprocess.CompletedProcess:
    npm = shutil.which("npm")
    if npm is None:
        raise ToolMissing(
            "npm is not on PATH, so no compiler can be installed",
            remedy="install Node.js 20 or newer (with npm)",
        )
    try:
        proc = subprocess.run(
            [npm, *args, "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ToolMissing(f"npm {args[0]} did not finish within {NPM_TIMEOUT}s") from exc
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        detail = lines[-1] if lines else f"exit {proc.returncode}"
        raise ToolMissing(
            f"npm {args[0]} failed: {detail}", remedy="check access to the npm registry"
        )
    return proc


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def ensure_compiler(version: str) -> Path:
    """The solc package folder for `version`, installing it from npm on first use."""
    found = package_dir(version)
    if found is not None:
        return found
    if not _is_version(version):
        raise ConfigError(f"{version!r} is not a compiler version like 0.4.26")
    if Version(version) < FIRST_STANDARD_JSON:
        raise CompileError(
            f"solc {version} predates standard JSON (0.4.11 and later are supported)"
        )
    if version not in registry_versions():
        raise CompileError(f"solc {version} is not a published release of the npm package solc")
    root = cache_root()
    with (root / f".{version}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be installing it right now
        cached = _manifest(version)
        if cached is not None:
            return Path(cached.package_dir)
        return _install(version, root)


def _install(version: str, root: Path) -> Path:
    final = _version_dir(version)
    shutil.rmtree(final, ignore_errors=True)  # a half-done install from a crash
    staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=root))
    try:
        (staging / "package.json").write_text('{"name": "defiagent-solc", "private": true}\n')
        # npm checks the tarball against the registry's integrity hash; scripts never run.
        _npm(
            ["install", "--ignore-scripts", "--save-exact", f"solc@{version}"],
            cwd=staging,
        )
        lock = json.loads((staging / "package-lock.json").read_text())
        meta = (lock.get("packages") or {}).get("node_modules/solc") or {}
        package = staging / "node_modules" / "solc"
        soljson = package / "soljson.js"
        if meta.get("version") != version or not soljson.is_file() or not meta.get("integrity"):
            raise ToolMissing(f"npm did not install solc {version} as expected")
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    package = final / "node_modules" / "solc"
    record = CachedCompiler(
        version=version,
        package_dir=str(package),
        integrity=meta["integrity"],
        soljson_sha256=_sha256(package / "soljson.js"),
        installed_at=time.time(),
    )
    _write_atomic(final / MANIFEST, record.model_dump_json(indent=1))
    return package


def verify_cached(compiler: CachedCompiler) -> str | None:
    """Why a cached compiler cannot be trusted (soljson.js changed since install), or None."""
    soljson = Path(compiler.package_dir) / "soljson.js"
    if not soljson.is_file():
        return "soljson.js is missing"
    if _sha256(soljson) != compiler.soljson_sha256:
        return "soljson.js changed since npm installed and verified it"
    return None
