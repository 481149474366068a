"""Compile a source bundle with the matching solcjs, cached by the exact compiler input.

The compiler's whole standard-JSON output (ASTs and source maps included) is kept beside
the compact result, so Slither analyses exactly what vetting compiled instead of
compiling the sources a second time (see slither_runner.run_slither_bundle)."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

from eth_utils import keccak
from pydantic import BaseModel, ConfigDict

from defiagent.cache import cache_dir
from defiagent.vetting.bundle import SourceBundle
from defiagent.vetting.compilers import ensure_compiler
from defiagent.vetting.solc import compile_standard_json, select_for_sources

OUTPUTS = [
    "abi",
    "evm.bytecode.object",
    "evm.deployedBytecode.object",
    "evm.deployedBytecode.immutableReferences",
    "evm.deployedBytecode.linkReferences",
    "metadata",
    # For Slither (crytic-compile reads these from the same output):
    "evm.bytecode.sourceMap",
    "evm.deployedBytecode.sourceMap",
]


class CompiledContract(BaseModel):
    model_config = ConfigDict(frozen=True)

    unit: str
    name: str
    abi: list
    runtime: str  # hex without 0x; may hold unlinked library placeholders
    creation: str = ""  # creation code, hex without 0x (for deploying what was vetted)
    immutables: list[tuple[int, int]] = []  # (byte offset, length)
    links: list[tuple[int, int]] = []  # unlinked library placeholders (byte offset, length)
    metadata_ranges: list[tuple[int, int]] = []  # CBOR metadata: own tail, and embedded
    metadata: str = ""

    @property
    def fqn(self) -> str:
        return f"{self.unit}:{self.name}"

    @property
    def codehash(self) -> str | None:
        if not self.runtime or "__" in self.runtime:
            return None
        return "0x" + keccak(bytes.fromhex(self.runtime)).hex()


class Compilation(BaseModel):
    model_config = ConfigDict(frozen=True)

    solc_version: str
    contracts: list[CompiledContract]

    def get(self, fqn: str) -> CompiledContract | None:
        return next((c for c in self.contracts if c.fqn == fqn), None)

    def deployable(self) -> list[CompiledContract]:
        return [c for c in self.contracts if c.runtime]

    def codehashes(self) -> set[str]:
        return {c.codehash for c in self.contracts if c.codehash}


def resolve_version(bundle: SourceBundle) -> str:
    """The exact compiler the bundle asks for, or the one its pragmas accept (installed on
    first use, see defiagent.vetting.compilers)."""
    wanted = bundle.settings.version
    if wanted:
        ensure_compiler(wanted)
        return wanted
    return select_for_sources(bundle.sources.values())


def _cbor_tail(hexcode: str) -> bytes:
    from defiagent.vetting.bytecode import metadata_length  # bytecode imports this module

    if not hexcode or "__" in hexcode:
        return b""
    code = bytes.fromhex(hexcode)
    n = metadata_length(code)
    return code[-n:] if n else b""


def _with_metadata_ranges(
    contracts: list[CompiledContract], output: dict
) -> list[CompiledContract]:
    """Where each runtime holds CBOR metadata: its own tail, and the tails of contracts it
    embeds (a factory carries its child's creation code, metadata hash included)."""
    tails = set()
    for by_name in (output.get("contracts") or {}).values():
        for data in by_name.values():
            evm = data.get("evm") or {}
            for part in ("bytecode", "deployedBytecode"):
                tail = _cbor_tail((evm.get(part) or {}).get("object") or "")
                if len(tail) > 8:
                    tails.add(tail)
    out = []
    for c in contracts:
        if not c.runtime or "__" in c.runtime:
            out.append(c)
            continue
        code = bytes.fromhex(c.runtime)
        ranges = set()
        for tail in tails:
            start = code.find(tail)
            while start >= 0:
                ranges.add((start, len(tail)))
                start = code.find(tail, start + 1)
        out.append(c.model_copy(update={"metadata_ranges": sorted(ranges)}))
    return out


def _standard_input(bundle: SourceBundle) -> dict:
    settings = bundle.settings.standard_settings(OUTPUTS)
    settings["outputSelection"]["*"][""] = ["ast"]
    return {
        "language": "Solidity",
        "sources": {unit: {"content": text} for unit, text in sorted(bundle.sources.items())},
        "settings": settings,
    }


def _paths(bundle: SourceBundle, version: str) -> tuple[Path, Path]:
    """Cache files for this exact input: the compact result and solc's whole output."""
    blob = json.dumps(_standard_input(bundle), sort_keys=True, separators=(",", ":"))
    key = hashlib.sha256(f"v4\0{version}\0{blob}".encode()).hexdigest()
    folder = cache_dir("solc-out")
    return folder / f"{key}.json", folder / f"{key}.solc-output.json"


def output_path(bundle: SourceBundle, version: str) -> Path:
    """Where solc's whole output for this bundle and compiler is (or will be) cached."""
    return _paths(bundle, version)[1]


def compiler_output(bundle: SourceBundle) -> tuple[str, Path]:
    """The compiler version and the file holding solc's standard-JSON output for the bundle
    (compiling it when it is not cached yet)."""
    version = resolve_version(bundle)
    _, raw = _paths(bundle, version)
    if not raw.is_file():
        compile_bundle(bundle)
    return version, raw


def compile_bundle(bundle: SourceBundle) -> Compilation:
    version = resolve_version(bundle)
    standard = _standard_input(bundle)
    cached, raw = _paths(bundle, version)
    if cached.is_file() and raw.is_file():
        return Compilation.model_validate_json(cached.read_text())
    output = compile_standard_json(standard, version=version)
    for source in (output.get("sources") or {}).values():
        # solc 0.4.11 answers only "legacyAST"; Slither reads either form from "ast".
        if source.get("ast") is None and source.get("legacyAST") is not None:
            source["ast"] = source.pop("legacyAST")
    _write(raw, json.dumps(output))
    contracts = []
    for unit, by_name in (output.get("contracts") or {}).items():
        for name, data in by_name.items():
            deployed = (data.get("evm") or {}).get("deployedBytecode") or {}
            creation = ((data.get("evm") or {}).get("bytecode") or {}).get("object") or ""
            immutables = [
                (ref["start"], ref["length"])
                for refs in (deployed.get("immutableReferences") or {}).values()
                for ref in refs
            ]
            links = [
                (ref["start"], ref["length"])
                for libs in (deployed.get("linkReferences") or {}).values()
                for refs in libs.values()
                for ref in refs
            ]
            contracts.append(
                CompiledContract(
                    unit=unit,
                    name=name,
                    abi=data.get("abi") or [],
                    runtime=(deployed.get("object") or "").removeprefix("0x"),
                    creation=creation.removeprefix("0x"),
                    immutables=sorted(immutables),
                    links=sorted(links),
                    metadata=data.get("metadata") or "",
                )
            )
    result = Compilation(solc_version=version, contracts=_with_metadata_ranges(contracts, output))
    _write(cached, result.model_dump_json())
    return result


def _write(path: Path, text: str) -> None:
    # A unique temporary name: batch workers may write the same entry at once.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
