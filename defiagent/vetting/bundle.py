"""A source bundle: the exact source units and compiler settings that describe a contract.

Built from a local .sol file, a folder (optionally with a solc `metadata.json`), or a
Sourcify answer. Imports are resolved the way Node/Hardhat do (relative to the importing
file, else the nearest `node_modules` upwards, else the toolchain's), because a package
may pin its own copy of a library: Uniswap V2 periphery ships @uniswap/lib 1.1.1 in its
own node_modules, and compiling against the top-level 4.x gives other bytecode.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from pathlib import Path
from typing import Any

from eth_utils import keccak
from pydantic import BaseModel, ConfigDict, Field

from defiagent.errors import ConfigError
from defiagent.toolchain import node_modules

METADATA_FILE = "metadata.json"

_IMPORT = re.compile(r"""\bimport\s+(?:[^'";]*?\bfrom\s+)?["']([^"']+)["']""")
_COMMENTS = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)


class CompilerSettings(BaseModel):
    """The parts of solc's standard-JSON `settings` that change the bytecode."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str | None = None  # "0.5.16" (a "+commit..." suffix is dropped); None: by pragma
    optimizer_enabled: bool = True
    optimizer_runs: int = 200
    optimizer_details: dict[str, Any] | None = None
    evm_version: str | None = None
    via_ir: bool = False
    remappings: list[str] = []
    libraries: dict[str, dict[str, str]] = {}
    metadata: dict[str, Any] | None = None  # e.g. {"bytecodeHash": "ipfs"}
    explicit: bool = False  # True when the settings came from the author, not our defaults

    def standard_settings(self, outputs: list[str]) -> dict[str, Any]:
        optimizer: dict[str, Any] = {"enabled": self.optimizer_enabled, "runs": self.optimizer_runs}
        if self.optimizer_details:
            optimizer["details"] = self.optimizer_details
        settings: dict[str, Any] = {
            "optimizer": optimizer,
            "outputSelection": {"*": {"*": outputs}},
        }
        if self.evm_version:
            settings["evmVersion"] = self.evm_version
        if self.via_ir:
            settings["viaIR"] = True
        if self.remappings:
            settings["remappings"] = list(self.remappings)
        if self.libraries:
            settings["libraries"] = self.libraries
        if self.metadata:
            settings["metadata"] = self.metadata
        return settings

    @classmethod
    def from_standard(cls, settings: dict[str, Any], version: str | None) -> CompilerSettings:
        opt = settings.get("optimizer") or {}
        return cls(
            version=normalize_version(version),
            optimizer_enabled=bool(opt.get("enabled", False)),
            optimizer_runs=int(opt.get("runs", 200)),
            optimizer_details=opt.get("details"),
            evm_version=settings.get("evmVersion"),
            via_ir=bool(settings.get("viaIR", False)),
            remappings=list(settings.get("remappings") or []),
            libraries=_libraries(settings.get("libraries") or {}),
            metadata=settings.get("metadata"),
            explicit=True,
        )


def _libraries(libs: dict[str, Any]) -> dict[str, dict[str, str]]:
    # metadata.json writes "unit:Lib": "0x..", standard JSON writes {"unit": {"Lib": "0x.."}}.
    out: dict[str, dict[str, str]] = {}
    for key, value in libs.items():
        if isinstance(value, dict):
            out.setdefault(key, {}).update(value)
        else:
            unit, _, name = key.rpartition(":")
            out.setdefault(unit, {})[name] = value
    return out


def normalize_version(version: str | None) -> str | None:
    if not version:
        return None
    return version.strip().removeprefix("v").split("+", 1)[0]


class SourceBundle(BaseModel):
    model_config = ConfigDict(frozen=True)

    sources: dict[str, str]  # unit name -> source text
    roots: list[str]  # units the author pointed at (the rest are their imports)
    settings: CompilerSettings = CompilerSettings()
    target: str | None = None  # "unit:Contract" when the deployment is known
    origin: str = ""  # where the bundle came from, for reports
    files: dict[str, str] = Field(default_factory=dict, exclude=True)  # unit -> local path

    def digest(self) -> str:
        h = hashlib.sha256()
        for unit in sorted(self.sources):
            h.update(unit.encode() + b"\0" + hashlib.sha256(self.sources[unit].encode()).digest())
        h.update(json.dumps(sorted(self.roots)).encode())
        return h.hexdigest()

    def with_settings(self, settings: CompilerSettings) -> SourceBundle:
        return self.model_copy(update={"settings": settings})

    def stage(self, folder: Path) -> list[Path]:
        """Write every unit below `folder` at its unit name; returns the root files."""
        for unit, text in self.sources.items():
            path = folder / _safe_unit(unit)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return [folder / _safe_unit(u) for u in self.roots]


def _safe_unit(unit: str) -> str:
    parts = unit.split("/")
    if unit.startswith("/") or ".." in parts or ":" in unit or "\\" in unit or not unit:
        raise ConfigError(f"source unit name {unit!r} cannot be staged safely")
    return unit


def pragma_ranges(text: str) -> list[str]:
    code = _COMMENTS.sub("", text)
    return [m.strip() for m in re.findall(r"pragma\s+solidity\s+([^;]+);", code)]


# ------------------------------------------------------------------ local files


def _nearest_node_modules_unit(path: Path) -> str | None:
    parts = path.parts
    if "node_modules" not in parts:
        return None
    i = len(parts) - 1 - parts[::-1].index("node_modules")
    return "/".join(parts[i + 1 :])


class _Escapes(Exception):
    """A relative import leaves the base folder: start again one folder up."""


class _Resolver:
    """Follows imports from local files and assigns each file one unit name."""

    def __init__(self, base: Path, extra_roots: list[Path]) -> None:
        self.base = base
        self.extra_roots = extra_roots
        self.sources: dict[str, str] = {}
        self.files: dict[str, str] = {}

    def unit_for(self, path: Path) -> str:
        inside = _nearest_node_modules_unit(path)
        if inside is not None and not path.is_relative_to(self.base):
            return inside
        try:
            return path.relative_to(self.base).as_posix()
        except ValueError:
            return inside or path.name

    def add(self, path: Path, unit: str) -> None:
        path = path.resolve()
        if unit in self.sources:
            if self.files.get(unit) != str(path) and self.sources[unit] != path.read_text():
                raise ConfigError(
                    f"two different files claim source unit {unit}: {self.files[unit]} and {path}"
                )
            return
        text = path.read_text()
        self.sources[unit] = text
        self.files[unit] = str(path)
        for imported in _IMPORT.findall(_COMMENTS.sub("", text)):
            child_unit, child_path = self.resolve(imported, unit, path)
            self.add(child_path, child_unit)

    def resolve(self, imported: str, unit: str, path: Path) -> tuple[str, Path]:
        if imported.startswith("."):
            child_unit = posixpath.normpath(posixpath.join(posixpath.dirname(unit), imported))
            if child_unit.startswith("../"):
                raise _Escapes(child_unit)
            child = (path.parent / imported).resolve()
            if child.is_file():
                return child_unit, child
            raise ConfigError(f"{path.name} imports {imported}, which is not at {child}")
        candidates = [self.base / imported, *(r / imported for r in self.extra_roots)]
        candidates += [d / "node_modules" / imported for d in path.parents]
        candidates.append(node_modules() / imported)
        for candidate in candidates:
            if candidate.is_file():
                return imported, candidate.resolve()
        raise ConfigError(
            f"{path.name} imports {imported}, which is in no source folder or node_modules"
        )


def _sol_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*.sol") if "node_modules" not in p.relative_to(folder).parts
    )


def _resolve_all(base: Path, roots: list[Path]) -> tuple[_Resolver, list[str]]:
    resolver = _Resolver(base, [])
    units = []
    for path in roots:
        unit = resolver.unit_for(path.resolve())
        resolver.add(path, unit)
        units.append(unit)
    return resolver, units


def bundle_from_path(
    target: Path,
    *,
    settings: CompilerSettings | None = None,
    contract: str | None = None,
) -> SourceBundle:
    """A bundle for a .sol file or a folder; a folder's metadata.json gives exact settings."""
    target = Path(target).resolve()
    if not target.exists():
        raise ConfigError(f"{target} does not exist")
    if target.is_dir() and (target / METADATA_FILE).is_file():
        bundle = bundle_from_metadata(json.loads((target / METADATA_FILE).read_text()), target)
        return bundle.with_settings(settings) if settings else bundle
    if target.is_file():
        if target.suffix != ".sol":
            raise ConfigError(f"{target} is not a .sol file")
        base, roots = target.parent, [target]
    else:
        base, roots = target, _sol_files(target)
        if not roots:
            raise ConfigError(f"{target} holds no .sol file")
    for _ in range(8):
        try:
            resolver, root_units = _resolve_all(base, roots)
            break
        except _Escapes:
            base = base.parent
    else:
        raise ConfigError(f"the imports of {target} reach too far above it")
    target_id = None
    if contract:
        target_id = contract if ":" in contract else None
    return SourceBundle(
        sources=resolver.sources,
        roots=root_units,
        settings=settings or CompilerSettings(),
        target=target_id,
        origin=str(target),
        files=resolver.files,
    )


def bundle_from_metadata(
    metadata: dict[str, Any], folder: Path | None = None, *, contents: dict[str, str] | None = None
) -> SourceBundle:
    """From solc's metadata JSON: its settings, and each source found by path or keccak256."""
    if metadata.get("language", "Solidity") != "Solidity":
        raise ConfigError(f"only Solidity sources are supported, not {metadata.get('language')}")
    contents = dict(contents or {})
    by_hash: dict[str, Path] = {}
    if folder is not None:
        for path in folder.rglob("*"):
            if path.is_file() and path.suffix in (".sol", ".vy"):
                by_hash.setdefault("0x" + keccak(path.read_bytes()).hex(), path)
    sources: dict[str, str] = {}
    files: dict[str, str] = {}
    for unit, info in (metadata.get("sources") or {}).items():
        want = (info.get("keccak256") or "").lower()
        text = info.get("content") or contents.get(unit)
        if text is None and folder is not None:
            path = folder / unit
            if path.is_file() and (not want or "0x" + keccak(path.read_bytes()).hex() == want):
                text, files[unit] = path.read_text(), str(path)
            elif want in by_hash:
                text, files[unit] = by_hash[want].read_text(), str(by_hash[want])
        if text is None:
            raise ConfigError(f"source {unit} named in the metadata is missing")
        if want and "0x" + keccak(text.encode()).hex() != want:
            raise ConfigError(f"source {unit} does not have the keccak256 the metadata names")
        sources[unit] = text
    settings = dict(metadata.get("settings") or {})
    compilation_target = settings.pop("compilationTarget", {}) or {}
    target = next((f"{u}:{n}" for u, n in compilation_target.items()), None)
    version = (metadata.get("compiler") or {}).get("version")
    return SourceBundle(
        sources=sources,
        roots=list(compilation_target) or list(sources),
        settings=CompilerSettings.from_standard(settings, version),
        target=target,
        origin=str(folder) if folder else "metadata",
        files=files,
    )
