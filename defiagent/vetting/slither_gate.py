"""The Slither gate: findings above the policy threshold fail unless a reviewer triaged them.

A triage record waives one finding only: it names Slither's finding id and check, the
codehash of the code analysed, a written reason, and carries a reviewer's EIP-712
signature over all four. Results are cached by the analysed sources, Slither version and
our detectors; a result whose sources were matched to deployed code is also indexed by
that codehash, so re-vetting unchanged code needs no new analysis.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from defiagent.allowlist.models import SlitherSummary, TriagedFinding
from defiagent.allowlist.policy import SlitherPolicy
from defiagent.allowlist.reviewers import Reviewers
from defiagent.allowlist.signatures import recover_typed, triage_record_typed_data
from defiagent.cache import cache_dir
from defiagent.vetting.bundle import SourceBundle
from defiagent.vetting.detectors import detectors_digest
from defiagent.vetting.reusable_triage import RESULT_KEY as SOURCES_KEY
from defiagent.vetting.reusable_triage import finding_files, source_hashes, waives
from defiagent.vetting.slither_runner import _slither_version, run_slither_bundle


class SlitherFinding(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    check: str
    impact: str
    confidence: str
    description: str
    location: str = ""
    files: dict[str, str] = {}  # source units its elements lie in -> their sha256

    def label(self) -> str:
        return (
            f"{self.check} ({self.impact} impact, {self.confidence} confidence) at {self.location}"
        )


class Waiver(BaseModel):
    model_config = ConfigDict(frozen=True)

    finding: SlitherFinding
    triage: TriagedFinding


class GateResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    slither_version: str
    solc_version: str | None
    codehashes: list[str]  # code the triage records may be bound to
    counts: dict[str, int]
    failing: list[SlitherFinding]  # above the threshold, before triage
    waived: list[Waiver]
    blocking: list[SlitherFinding]  # above the threshold and not validly triaged
    triage_problems: list[str]  # triage records that waive nothing, and why
    result_sha256: str
    sources_digest: str
    cached: bool = False

    @property
    def passed(self) -> bool:
        return not self.blocking


# ------------------------------------------------------------------ running, cached


def _cache_key(bundle: SourceBundle, solc_version: str) -> str:
    blob = json.dumps(
        [_slither_version(), solc_version, bundle.digest(), detectors_digest()],
        separators=(",", ":"),
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def _codehash_index(codehash: str) -> Path:
    name = f"{codehash.lower()}-{_slither_version()}-{detectors_digest()}.json"
    return cache_dir("slither", "by-codehash") / name


def _store(path: Path, data: dict) -> None:
    # A name of its own per process: batch workers may store the same result at once.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def analyse(bundle: SourceBundle, *, solc_version: str) -> tuple[dict, bool]:
    """Slither's JSON for the bundle and whether it came from the cache."""
    path = cache_dir("slither") / f"{_cache_key(bundle, solc_version)}.json"
    if path.is_file():
        return json.loads(path.read_text()), True
    result = run_slither_bundle(bundle, solc_version=solc_version)
    result["sources_digest"] = bundle.digest()
    result[SOURCES_KEY] = source_hashes(bundle.sources)  # where findings lie (reusable triage)
    _store(path, result)
    return result, False


def bind_to_codehash(result: dict, codehash: str) -> None:
    """Remember that this analysis describes `codehash` (call only after a source match)."""
    _store(_codehash_index(codehash), result)


def cached_for_codehash(codehash: str) -> dict | None:
    path = _codehash_index(codehash)
    return json.loads(path.read_text()) if path.is_file() else None


# ------------------------------------------------------------------ judging


def findings(result: dict) -> list[SlitherFinding]:
    out = []
    hashes = result.get(SOURCES_KEY) or {}
    for d in (result.get("results") or {}).get("detectors") or []:
        out.append(
            SlitherFinding(
                id=d["id"],
                check=d["check"],
                impact=d["impact"],
                confidence=d["confidence"],
                description=" ".join((d.get("description") or "").split())[:400],
                location=d.get("first_markdown_element") or "",
                files=finding_files(d, hashes),
            )
        )
    return out


def result_sha256(result: dict) -> str:
    return hashlib.sha256(json.dumps(result, sort_keys=True).encode()).hexdigest()


def triage_problem(
    t: TriagedFinding, reviewers: Reviewers | None, codehashes: set[str]
) -> str | None:
    """Why this triage record cannot waive anything, or None if it is sound."""
    who = f"triage of {t.check} {t.slither_id[:12]} by {t.reviewer}"
    if reviewers is None:
        return f"{who} cannot be checked: there is no reviewers file"
    if reviewers.get(t.reviewer) is None:
        return f"{who}: {t.reviewer} is not a listed reviewer"
    if recover_typed(triage_record_typed_data(t), t.signature) != t.reviewer:
        return f"{who}: the signature does not match the record (edited or forged)"
    if t.codehash is not None and t.codehash.lower() not in codehashes:
        return f"{who}: it was signed for code {t.codehash}, not the code analysed"
    return None


def _source_problem(
    t: TriagedFinding, failing: list[SlitherFinding], hashes: dict[str, str]
) -> str | None:
    """Why a sound source-bound record waives nothing in these sources."""
    who = f"triage of {t.check} {t.slither_id[:12]} in {t.source_unit}"
    analysed = hashes.get(t.source_unit or "")
    if analysed != t.source_sha256:
        return (
            f"{who} was signed for the file with sha256 {(t.source_sha256 or '')[:12]}, "
            f"but the analysed {t.source_unit} has sha256 {(analysed or '')[:12]} (another file)"
        )
    if not any(waives(t, f.id, f.check, f.files) for f in failing):
        return f"{who} matches no failing finding lying in that file (stale)"
    return None


def evaluate(
    result: dict,
    *,
    policy: SlitherPolicy,
    triage: list[TriagedFinding],
    reviewers: Reviewers | None,
    codehashes: set[str],
    cached: bool = False,
) -> GateResult:
    codehashes = {c.lower() for c in codehashes}
    all_findings = findings(result)
    counts: dict[str, int] = {}
    for f in all_findings:
        counts[f.impact] = counts.get(f.impact, 0) + 1
    failing = [f for f in all_findings if policy.fails(f.impact, f.confidence)]
    problems: list[str] = []
    sound: dict[tuple[str, str], TriagedFinding] = {}
    failing_ids = {(f.id, f.check) for f in failing}
    hashes: dict[str, str] = result.get(SOURCES_KEY) or {}
    by_source: list[TriagedFinding] = []
    for t in triage:
        problem = triage_problem(t, reviewers, codehashes)
        if t.source_sha256 is not None:
            if t.source_unit not in hashes:
                continue  # a review of a file these sources do not hold: not for them
            problem = problem or _source_problem(t, failing, hashes)
            if problem:
                problems.append(problem)
            else:
                by_source.append(t)
            continue
        if problem is None and (t.slither_id, t.check) not in failing_ids:
            problem = f"triage of {t.check} {t.slither_id[:12]} matches no failing finding (stale)"
        if problem:
            problems.append(problem)
        else:
            sound[(t.slither_id, t.check)] = t
    waived, blocking = [], []
    for f in failing:
        record = sound.get((f.id, f.check)) or next(
            (t for t in by_source if waives(t, f.id, f.check, f.files)), None
        )
        if record is None:
            blocking.append(f)
        else:
            waived.append(Waiver(finding=f, triage=record))
    return GateResult(
        slither_version=result.get("slither_version") or _slither_version(),
        solc_version=result.get("solc_version"),
        codehashes=sorted(codehashes),
        counts=counts,
        failing=failing,
        waived=waived,
        blocking=blocking,
        triage_problems=problems,
        result_sha256=result_sha256(result),
        sources_digest=result.get("sources_digest") or "",
        cached=cached,
    )


def summary(gate: GateResult, codehash: str, source_match: str | None) -> SlitherSummary:
    return SlitherSummary(
        slither_version=gate.slither_version,
        solc_version=gate.solc_version,
        codehash=codehash,
        counts=gate.counts,
        failing=[f.id for f in gate.failing],
        triaged=[w.triage for w in gate.waived],
        failing_sources={
            w.finding.id: w.triage.source_sha256
            for w in gate.waived
            if w.triage.source_sha256 is not None
        },
        result_sha256=gate.result_sha256,
        source_match=source_match,
        sources_digest=gate.sources_digest or None,
    )


def summary_problems(s: SlitherSummary, reviewers: Reviewers | None, codehash: str) -> list[str]:
    """Offline check of a recorded summary: bound to this code, every failing id triaged."""
    problems = []
    if s.codehash.lower() != codehash.lower():
        problems.append(f"the Slither result is for code {s.codehash}, not the pinned {codehash}")
    sound = set()
    for t in s.triaged:
        problem = triage_problem(t, reviewers, {codehash.lower()})
        if (
            problem is None
            and t.source_sha256 is not None
            and s.failing_sources.get(t.slither_id) != t.source_sha256
        ):
            problem = (
                f"triage of {t.check} {t.slither_id[:12]} is bound to {t.source_unit}, "
                "which the recorded result does not place that finding in"
            )
        if problem:
            problems.append(problem)
        else:
            sound.add(t.slither_id)
    for finding_id in s.failing:
        if finding_id not in sound:
            problems.append(
                f"Slither finding {finding_id[:12]} is above the threshold and not triaged"
            )
    return problems
