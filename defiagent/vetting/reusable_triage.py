"""Reusable reviews: where a finding lies, so one signed triage of a source file's finding
applies to every contract built with that exact file.

A Slither result is stamped with the sha256 of every source unit analysed; a finding's
`files` are the units its elements lie in, with their sha256. A triage record bound to a
source (`source_unit`, `source_sha256`) waives a finding with its id and check only when
the finding lies wholly in that one unit and the unit's content hashes to the signed
sha256: a changed (or swapped) dependency, or a finding that reaches into the contract's
own code, is not waived by it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from defiagent.allowlist.models import TriagedFinding

RESULT_KEY = "source_sha256"  # key of the unit -> sha256 map in a stored Slither result


def source_hashes(sources: Mapping[str, str]) -> dict[str, str]:
    """unit name -> sha256 (hex) of its text, as the file's bytes (UTF-8)."""
    return {unit: hashlib.sha256(text.encode()).hexdigest() for unit, text in sources.items()}


def finding_files(detector: Mapping, hashes: Mapping[str, str]) -> dict[str, str]:
    """The units a Slither finding's elements lie in, each with its sha256 ("" unknown)."""
    files: dict[str, str] = {}
    for element in detector.get("elements") or []:
        unit = (element.get("source_mapping") or {}).get("filename_relative") or ""
        files[unit] = hashes.get(unit, "")
    return files


def single_source(files: Mapping[str, str]) -> tuple[str, str] | None:
    """(unit, sha256) when the finding lies wholly in one known unit, else None."""
    if len(files) != 1:
        return None
    unit, digest = next(iter(files.items()))
    return (unit, digest) if unit and digest else None


def waives(t: TriagedFinding, finding_id: str, check: str, files: Mapping[str, str]) -> bool:
    """Whether a (sound) source-bound record waives this finding."""
    if t.source_sha256 is None or (t.slither_id, t.check) != (finding_id, check):
        return False
    return single_source(files) == (t.source_unit, t.source_sha256)
