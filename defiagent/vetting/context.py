"""What vetting learned about one target, handed to every check; and the checks' verdicts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from defiagent.allowlist.models import AllowlistEntry, AuditRecord, ReviewBasis
from defiagent.allowlist.policy import Policy
from defiagent.allowlist.reviewers import Reviewers
from defiagent.vetting.audits import CodeTarget
from defiagent.vetting.compiler import Compilation
from defiagent.vetting.mythril import MythrilResult
from defiagent.vetting.proxy import ProxyResolution
from defiagent.vetting.slither_gate import GateResult
from defiagent.vetting.source_verify import SourceMatch

Status = Literal["pass", "fail", "warn", "skip"]


class Outcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    check: str
    status: Status
    reason: str
    subject: str = ""
    # A failure because the code could not be analysed (compile error, analyser crash),
    # not because of what is in it: it makes the verdict "could-not-analyse".
    unanalysed: bool = False


@dataclass
class CodeUnit:
    """One piece of runtime code behind the target: the contract, or proxy + implementation."""

    label: str  # "contract" | "proxy" | "implementation"
    address: str | None
    codehash: str
    code: bytes = b""
    source_match: SourceMatch | None = None

    def target(self, chain_id: int | None) -> CodeTarget:
        return CodeTarget(
            label=self.label, chain_id=chain_id, address=self.address, codehash=self.codehash
        )


@dataclass
class VetContext:
    kind: Literal["sources", "address", "entry"]
    policy: Policy
    reviewers: Reviewers | None
    today: date
    chain_id: int | None = None
    address: str | None = None
    block: int | None = None
    units: list[CodeUnit] = field(default_factory=list)
    proxy: ProxyResolution | None = None
    compilation: Compilation | None = None
    slither: GateResult | None = None
    slither_error: str | None = None  # why Slither was not run (no or mismatched sources)
    analysis_error: str | None = None  # the sources did not compile, or Slither failed on them
    mythril: list[MythrilResult] | None = None  # None: Mythril was not run
    mythril_note: str | None = None  # why it was not run, or what was left out
    mythril_error: str | None = None  # Mythril ran and gave no result
    slither_note: str | None = None  # e.g. "reused the cached result for this codehash"
    slither_from_codehash: bool = False  # result reused from a run whose sources matched
    audits: list[AuditRecord] = field(default_factory=list)
    entry: AllowlistEntry | None = None
    abi: list | None = None  # ABI of the logic code, when sources matched
    report_base: Path | None = None  # folder relative report URIs are read from
    fetch_error: str | None = None  # the chain could not be read
    online: bool = True  # False: judging an entry from its own pins, without a chain
    entry_path: Path | None = None
    # "bytecode": no sources, and the policy allows judging the runtime code alone
    # ([sources] when_missing = "bytecode-only"): Mythril is then required, Slither not run.
    review_basis: ReviewBasis = "sources"

    @property
    def bytecode_only(self) -> bool:
        """Judged on the runtime code alone: by this vet, or as the entry records."""
        if self.kind == "entry":
            return self.entry is not None and self.entry.bytecode_only
        return self.review_basis == "bytecode"

    @property
    def logic(self) -> CodeUnit | None:
        """The code that holds the logic: the implementation behind a proxy, else the contract."""
        for label in ("implementation", "contract"):
            unit = next((u for u in self.units if u.label == label), None)
            if unit is not None:
                return unit
        return None


def pinned_units(entry: AllowlistEntry) -> list[CodeUnit]:
    """The code an entry pins: what its reviewers signed and its audits must cover."""
    units = [CodeUnit("proxy" if entry.proxy else "contract", entry.address, entry.codehash)]
    if entry.proxy:
        units.append(
            CodeUnit(
                "implementation", entry.proxy.implementation, entry.proxy.implementation_codehash
            )
        )
    return units
