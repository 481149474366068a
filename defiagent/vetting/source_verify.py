"""Source verification: do these sources, built with these settings, give the deployed code?"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from defiagent.errors import ConfigError, InfraError
from defiagent.vetting.bundle import CompilerSettings, SourceBundle
from defiagent.vetting.bytecode import codehash, compare, metadata_length
from defiagent.vetting.compiler import Compilation, compile_bundle

Level = Literal["full", "partial", "mismatch", "unverified"]
_RANK = {"full": 3, "partial": 2, "mismatch": 1, "unverified": 0}


class SourceMatch(BaseModel):
    model_config = ConfigDict(frozen=True)

    level: Level
    codehash: str  # of the deployed runtime code
    contract: str | None = None  # "unit:Name" that matched
    solc_version: str | None = None
    settings: CompilerSettings | None = None
    origin: str = ""
    reason: str
    compile_error: bool = False  # a mismatch only because the sources did not compile

    def label(self) -> str:
        return {"full": "full match", "partial": "partial match"}.get(self.level, self.level)

    def meets(self, minimum: str) -> bool:
        return minimum == "none" or _RANK[self.level] >= _RANK.get(minimum, 3)


def embedded_solc_version(code: bytes) -> str | None:
    """solc >= 0.5.9 writes its version into the CBOR metadata ("solc": 3 bytes)."""
    n = metadata_length(code)
    tail = code[-n:] if n else b""
    key = b"dsolcC"  # text(4) "solc", then bytes(3)
    i = tail.find(key)
    if i < 0 or len(tail) < i + len(key) + 3:
        return None
    major, minor, patch = tail[i + len(key) : i + len(key) + 3]
    return f"{major}.{minor}.{patch}"


def _candidate_settings(bundle: SourceBundle, deployed: bytes) -> list[CompilerSettings]:
    if bundle.settings.explicit:
        return [bundle.settings]
    # No settings from the author: the compiler named in the bytecode, and the two
    # optimizer settings most projects use. Anything else needs a metadata.json.
    version = bundle.settings.version or embedded_solc_version(deployed)
    base = bundle.settings.model_copy(update={"version": version})
    return [base, base.model_copy(update={"optimizer_enabled": False})]


def verify_source(bundle: SourceBundle, deployed: bytes) -> tuple[SourceMatch, Compilation | None]:
    """Compile and compare; never raises for a mismatch, only reports it."""
    deployed_hash = codehash(deployed)
    best: SourceMatch | None = None
    best_compilation: Compilation | None = None
    for settings in _candidate_settings(bundle, deployed):
        try:
            compilation = compile_bundle(bundle.with_settings(settings))
        except ConfigError as exc:
            reason = f"the sources from {bundle.origin or 'the bundle'} do not compile: {exc}"
            match = SourceMatch(
                level="mismatch", codehash=deployed_hash, reason=reason, compile_error=True
            )
            return match, None
        except InfraError as exc:  # compiler missing: we cannot tell, so it does not count
            reason = f"source verification could not run: {exc}"
            if best is None:
                best = SourceMatch(level="unverified", codehash=deployed_hash, reason=reason)
            continue
        candidates = compilation.deployable()
        if bundle.target:
            candidates = [c for c in candidates if c.fqn == bundle.target]
        for contract in candidates:
            level = compare(deployed, contract)
            if best is None or _RANK[level] > _RANK[best.level]:
                best = SourceMatch(
                    level=level,
                    codehash=deployed_hash,
                    contract=contract.fqn if level != "mismatch" else None,
                    solc_version=compilation.solc_version,
                    settings=settings,
                    origin=bundle.origin,
                    reason=_reason(level, contract.fqn, compilation.solc_version, settings),
                )
                best_compilation = compilation
        if best is not None and best.level == "full":
            break
    if best is None or best.level == "mismatch":
        tried = "; ".join(_describe(s) for s in _candidate_settings(bundle, deployed))
        what = bundle.target or "no contract in the sources"
        verb = "does not compile" if bundle.target else "compiles"
        best = SourceMatch(
            level="mismatch",
            codehash=deployed_hash,
            origin=bundle.origin,
            reason=f"{what} {verb} to the deployed runtime code (tried {tried})",
        )
    return best, best_compilation


def _describe(s: CompilerSettings) -> str:
    opt = f"optimizer {s.optimizer_runs} runs" if s.optimizer_enabled else "no optimizer"
    evm = f", evm {s.evm_version}" if s.evm_version else ""
    return f"solc {s.version or 'by pragma'}, {opt}{evm}"


def _reason(level: str, fqn: str, version: str, settings: CompilerSettings) -> str:
    how = _describe(settings.model_copy(update={"version": version}))
    if level == "full":
        return f"{fqn} ({how}) gives the deployed code exactly, metadata hash included"
    if level == "partial":
        return f"{fqn} ({how}) gives the deployed code; only the metadata hash differs"
    return f"{fqn} ({how}) does not give the deployed code"
