"""Audit records (ERC-7512 style) judged against the policy and the code on chain.

An audit counts for a piece of code only if a trusted auditor issued it, it is young
enough, it names that code's runtime codehash (and, if it names a deployment, this one),
its signature holds when present (or the policy demands one), its report file hashes to
the recorded sha256 when the file is at hand, and it leaves no unresolved finding of a
severity the policy fails on.
"""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, ValidationError

from defiagent.allowlist.models import AuditRecord
from defiagent.allowlist.policy import AuditPolicy
from defiagent.allowlist.signatures import audit_typed_data, recover_typed, sign_typed
from defiagent.allowlist.tomlio import read_toml, validation_message
from defiagent.errors import ConfigError


class CodeTarget(BaseModel):
    """One piece of deployed code an audit must cover."""

    model_config = ConfigDict(frozen=True)

    label: str  # "contract", "proxy", "implementation"
    chain_id: int | None
    address: str | None
    codehash: str


class AuditVerdict(BaseModel):
    model_config = ConfigDict(frozen=True)

    auditor: str
    issued_at: date
    counts: bool  # valid for the target
    reasons: list[str]  # why it does not count (empty when it counts)
    blocking: list[str] = []  # unresolved findings the policy fails on
    notes: list[str] = []


def covers(record: AuditRecord, target: CodeTarget) -> bool:
    for c in record.contracts:
        if c.runtime_codehash.lower() != target.codehash.lower():
            continue
        if c.chain_id is not None and c.chain_id != target.chain_id:
            continue
        if c.address is not None and c.address != target.address:
            continue
        return True
    return False


def _local_report(uri: str, base: Path | None) -> Path | None:
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(parsed.path)
    if parsed.scheme == "" and base is not None:
        return base / uri
    return None


def judge(
    record: AuditRecord,
    target: CodeTarget,
    policy: AuditPolicy,
    *,
    today: date,
    report_base: Path | None = None,
) -> AuditVerdict:
    name = f"{record.auditor.name} ({record.issued_at})"
    reasons: list[str] = []
    notes: list[str] = []
    if policy.trusted(record.auditor.address) is None:
        reasons.append(
            f"auditor {record.auditor.name} {record.auditor.address} is not trusted by the policy"
        )
    if record.signature:
        if recover_typed(audit_typed_data(record), record.signature) != record.auditor.address:
            reasons.append("the auditor's signature does not match the record")
    elif policy.require_auditor_signature:
        reasons.append("the record is not signed by the auditor and the policy requires it")
    age = (today - record.issued_at).days
    if age < 0:
        reasons.append(f"it is dated in the future ({record.issued_at})")
    elif age > policy.max_age_days:
        reasons.append(
            f"it is {age} days old, more than the {policy.max_age_days} the policy allows"
        )
    if not covers(record, target):
        reasons.append(
            f"it does not cover the deployed {target.label} code {target.codehash[:12]}…"
        )
    report = _local_report(record.report_uri, report_base)
    if report is not None and report.is_file():
        if hashlib.sha256(report.read_bytes()).hexdigest() != record.report_sha256:
            reasons.append(f"the report {report.name} does not have the recorded sha256")
    else:
        notes.append(f"report {record.report_uri} not at hand: its sha256 was not checked")
    blocking = [
        f"{f.severity} finding {f.id} '{f.title}' is {f.status}"
        for f in record.findings
        if f.status in policy.unresolved_statuses and f.severity in policy.fail_on_unresolved
    ]
    return AuditVerdict(
        auditor=name,
        issued_at=record.issued_at,
        counts=not reasons,
        reasons=reasons,
        blocking=blocking,
        notes=notes,
    )


def sign_audit(record: AuditRecord, signer) -> AuditRecord:
    """The auditor's EIP-712 signature over the record (the signer must be the auditor)."""
    if signer.address.lower() != record.auditor.address.lower():
        raise ConfigError(
            f"the audit names auditor key {record.auditor.address}, not {signer.address}"
        )
    unsigned = record.model_copy(update={"signature": None})
    return record.model_copy(update={"signature": sign_typed(signer, audit_typed_data(unsigned))})


def load_audit(path: Path) -> AuditRecord:
    """An audit record from a TOML or JSON file."""
    path = Path(path)
    try:
        if path.suffix == ".json":
            return AuditRecord.model_validate_json(path.read_text())
        return AuditRecord.model_validate(read_toml(path))
    except FileNotFoundError as exc:
        raise ConfigError(f"audit record {path} does not exist") from exc
    except ValueError as exc:
        message = validation_message(exc) if isinstance(exc, ValidationError) else str(exc)
        raise ConfigError(f"{path} is not a valid audit record: {message}") from exc
