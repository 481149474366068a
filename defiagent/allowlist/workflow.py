"""The review workflow, usable from Python without the CLI.

propose_entry -> (triage_finding ...) -> approve_entry x M -> load_active_allowlist
revoke_entry any time; verify_allowlist in CI and at start.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eth_utils import keccak, to_checksum_address

from defiagent.allowlist.approvals import add_approval, approval_problems, sign_approval
from defiagent.allowlist.functions import default_functions
from defiagent.allowlist.models import (
    AllowedFunction,
    AllowlistEntry,
    AuditRecord,
    ProxyInfo,
    Role,
    TriagedFinding,
)
from defiagent.allowlist.policy import Policy, load_policy
from defiagent.allowlist.report import render_review
from defiagent.allowlist.reviewers import Reviewers, load_reviewers
from defiagent.allowlist.signatures import (
    sign_typed,
    signer_address,
    source_triage_typed_data,
    triage_typed_data,
)
from defiagent.allowlist.store import entry_path, structure_problems
from defiagent.allowlist.tomlio import read_entry, write_entry
from defiagent.allowlist.verify import offline_outcomes
from defiagent.errors import ConfigError, Refused
from defiagent.vetting.audits import load_audit
from defiagent.vetting.bundle import CompilerSettings, SourceBundle
from defiagent.vetting.context import Outcome
from defiagent.vetting.onchain import ChainReader
from defiagent.vetting.reusable_triage import single_source
from defiagent.vetting.slither_gate import SlitherFinding, summary
from defiagent.vetting.slither_gate import findings as slither_findings
from defiagent.vetting.sourcify import SourcifyClient
from defiagent.vetting.vet import BYTECODE_ONLY_SETTING, VetReport, vet_address

if TYPE_CHECKING:
    from defiagent.simulation.round_trip import RoundTrip

DEFAULT_APPROVE_TOKENS = 10**6  # default approve cap, in whole tokens: the reviewer edits it


@dataclass
class Proposal:
    entry_path: Path
    report_path: Path
    slither_path: Path | None
    entry: AllowlistEntry
    report: VetReport
    notes: list[str] = field(default_factory=list)
    round_trip: Any = None  # a simulation.round_trip.RoundTrip when a token was probed

    @property
    def passed(self) -> bool:
        return self.report.passed

    @property
    def sources_missing(self) -> str | None:
        """Why the contract was refused for want of sources, in one sentence naming the
        policy setting that allows a bytecode-only review; None when that is not why."""
        if (
            self.entry.slither is not None
            or self.report.review_basis != "sources"
            or any(u.source_match is not None for u in self.report.units)
        ):
            return None
        return (
            f"{self.entry.address} has no sources to review (none given, none on Sourcify, "
            "no Slither result cached for its code), and the policy does not allow a "
            "review of its bytecode alone: give --sources, or set "
            f"{BYTECODE_ONLY_SETTING} in policy.toml"
        )

    @property
    def probe_failed(self) -> bool:
        """A round-trip probe ran and the token failed it (a honeypot, or it could not run)."""
        return self.round_trip is not None and not self.round_trip.passed


@dataclass
class ApprovalResult:
    entry_path: Path
    entry: AllowlistEntry
    reviewer: str
    valid: list[str]
    threshold: int
    dropped: list[str]

    @property
    def active(self) -> bool:
        return len(self.valid) >= self.threshold


def _root_of(path: Path, root: Path | None) -> Path:
    return Path(root) if root is not None else Path(path).resolve().parent.parent


def sidecar(path: Path, kind: str) -> Path:
    """Files kept beside an entry: <address>.slither.json, <address>.review.md."""
    return Path(path).with_name(f"{Path(path).stem}.{kind}")


def _token_cap(reader: ChainReader, address: str) -> int:
    answer = reader.call(address, keccak(text="decimals()")[:4])
    decimals = int.from_bytes(answer[:32], "big") if answer and len(answer) >= 32 else 18
    cap: int = DEFAULT_APPROVE_TOKENS * 10 ** min(decimals, 36)  # int ** int is Any to mypy
    return cap


def propose_entry(
    root: Path,
    address: str,
    *,
    rpc: Any,
    name: str,
    role: Role | str = Role.OTHER,
    sources: Path | SourceBundle | None = None,
    sourcify: SourcifyClient | None = None,
    audits: Sequence[AuditRecord | Path] = (),
    triage: Sequence[TriagedFinding] = (),
    functions: list[AllowedFunction] | None = None,
    allowed_callees: Sequence[str] = (),
    max_approve: int | None = None,
    settings: CompilerSettings | None = None,
    notes: str = "",
    policy: Policy | None = None,
    reviewers: Reviewers | None = None,
    today: date | None = None,
    replace: bool = False,
    probe_pool: str | None = None,
    probe_router: str | None = None,
    probe_max_loss_bps: int | None = None,
) -> Proposal:
    """Vet a deployed contract and write its proposed entry and review report (unapproved).

    The entry is written even when checks fail: the report says what must be fixed or
    triaged before a reviewer will be allowed to sign.

    `sources` may be None: Sourcify is asked when given, and a Slither result cached for
    the codehash is reused. Without any, the contract is refused, unless the policy
    (`policy` or the root's policy.toml) says `[sources] when_missing = "bytecode-only"`:
    it is then judged on its runtime bytecode alone (Mythril required, audits as ever), and
    the entry records `review_basis = "bytecode"` and Mythril's result, both signed.

    `probe_pool` (a token only, with `probe_router`): buy the token through that Uniswap V2
    pool and sell it back, on a throwaway local fork of the chain, and add the result as
    the `round-trip-sellable` check (a honeypot fails it).
    """
    root = Path(root)
    role = Role(role)
    if probe_pool is not None:
        if role != Role.TOKEN:
            raise ConfigError(
                f"--probe-pool probes a token's round trip: use it with --role token, not {role}"
            )
        if not probe_router:
            raise ConfigError("--probe-pool needs --probe-router, the router to buy and sell with")
        try:
            probe_pool, probe_router = (
                to_checksum_address(probe_pool),
                to_checksum_address(probe_router),
            )
        except ValueError as exc:
            raise ConfigError(f"--probe-pool and --probe-router must be addresses: {exc}") from exc
    reader = rpc if isinstance(rpc, ChainReader) else ChainReader(rpc)
    existing = entry_path(root, reader.chain_id, address) if not replace else None
    if existing is not None and existing.is_file() and read_entry(existing).approvals:
        raise ConfigError(
            f"{existing} already exists with approvals: revoke it, or propose again with "
            "--replace (which voids them)"
        )
    policy = policy or load_policy(root)
    if reviewers is None:
        try:
            reviewers = load_reviewers(root)
        except ConfigError:
            reviewers = None  # triage cannot be judged yet; the report will say so
    records = [a if isinstance(a, AuditRecord) else load_audit(Path(a)) for a in audits]
    vetting = vet_address(
        reader,
        address,
        policy=policy,
        reviewers=reviewers,
        sources=sources,
        sourcify=sourcify,
        audits=records,
        triage=triage,
        settings=settings,
        report_base=root,
        today=today,
    )
    ctx = vetting.ctx
    if not ctx.units:
        raise Refused(f"there is no contract at {address} on chain {reader.chain_id}")
    report = vetting.report
    round_trip = None
    if probe_pool is not None and probe_router:
        round_trip = _probe(reader, address, probe_pool, probe_router, probe_max_loss_bps)
        probed = Outcome(
            check=round_trip_rule(),
            status="pass" if round_trip.passed else "fail",
            reason=round_trip.reason,
            subject=f"pool {probe_pool}",
        )
        report = report.model_copy(update={"outcomes": [*report.outcomes, probed]})
    main = ctx.units[0]
    proxy = None
    if ctx.proxy is not None and ctx.proxy.is_proxy:
        if not ctx.proxy.implementation or not ctx.proxy.implementation_codehash:
            raise Refused(f"cannot propose {address}: {'; '.join(ctx.proxy.problems)}")
        proxy = ProxyInfo(
            kind=ctx.proxy.kind,
            admin=ctx.proxy.admin,
            beacon=ctx.proxy.beacon,
            implementation=ctx.proxy.implementation,
            implementation_codehash=ctx.proxy.implementation_codehash,
        )
    review_notes: list[str] = []
    if functions is None:
        cap = max_approve
        if cap is None and role in (Role.TOKEN, Role.WRAPPED_NATIVE):
            cap = _token_cap(reader, main.address or address)
            review_notes.append(
                f"approve is capped at {cap} base units ({DEFAULT_APPROVE_TOKENS:,} tokens): "
                "edit the max-amount to your risk budget"
            )
        functions, fn_notes = default_functions(role, abi=ctx.abi, max_approve=cap)
        review_notes += fn_notes
        if ctx.abi is None and role in (Role.ROUTER, Role.TOKEN, Role.WRAPPED_NATIVE):
            review_notes.append(
                "no ABI (sources not matched): default functions were not checked against the code"
            )
    logic = ctx.logic
    slither_summary = None
    if ctx.slither is not None and logic is not None:
        level = logic.source_match.level if logic.source_match else None
        slither_summary = summary(ctx.slither, logic.codehash, level)
    if ctx.bytecode_only and report.review_note:
        review_notes.insert(0, report.review_note)
    entry = AllowlistEntry(
        chain_id=reader.chain_id,
        address=to_checksum_address(address),
        name=name,
        role=role,
        codehash=main.codehash,
        proxy=proxy,
        audits=records,
        slither=slither_summary,
        functions=functions,
        allowed_callees=[to_checksum_address(a) for a in allowed_callees],
        notes=notes,
        review_basis=ctx.review_basis,
        mythril=[m.summary() for m in ctx.mythril or []] if ctx.bytecode_only else [],
    )
    path = entry_path(root, reader.chain_id, address)
    write_entry(path, entry)
    slither_path = None
    if vetting.slither_result is not None:
        slither_path = sidecar(path, "slither.json")
        slither_path.write_text(json.dumps(vetting.slither_result, indent=1, sort_keys=True))
    if ctx.slither_note:
        review_notes.append(ctx.slither_note)
    report_path = sidecar(path, "review.md")
    report_path.write_text(render_review(entry, report, review_notes, round_trip=round_trip))
    return Proposal(path, report_path, slither_path, entry, report, review_notes, round_trip)


def round_trip_rule() -> str:
    from defiagent.simulation.checks.round_trip_sellable import RoundTripSellable

    return RoundTripSellable.id


def _probe(
    reader: ChainReader, token: str, pool: str, router: str, max_loss_bps: int | None
) -> RoundTrip:
    """The round trip of `token` on a local fork of the reader's chain at the reader's block."""
    from defiagent.simulation.checks.round_trip_sellable import RoundTripConfig
    from defiagent.simulation.round_trip import probe_token

    limit = RoundTripConfig().max_round_trip_loss_bps if max_loss_bps is None else max_loss_bps
    if not isinstance(reader.url, str) or not reader.url.startswith(("http://", "https://")):
        raise ConfigError("the round-trip probe forks the chain: give an http(s) RPC URL")
    block = reader.block if isinstance(reader.block, int) else None
    return probe_token(reader.url, token, pool, router, limit_bps=limit, block_number=block)


def sign_triage(
    slither_id: str, check: str, codehash: str, reason: str, signer: Any
) -> TriagedFinding:
    """A reviewer's signed waiver of one Slither finding on one codehash."""
    if len(reason.strip()) < 10:
        raise ConfigError("a triage needs a written reason (at least 10 characters)")
    signature = sign_typed(signer, triage_typed_data(slither_id, check, codehash, reason))
    return TriagedFinding(
        slither_id=slither_id,
        check=check,
        codehash=codehash,
        reason=reason,
        reviewer=signer_address(signer),
        signature=signature,
    )


def sign_source_triage(
    slither_id: str, check: str, source_unit: str, source_sha256: str, reason: str, signer: Any
) -> TriagedFinding:
    """A reviewer's signed waiver of one Slither finding lying in one exact source file:
    it applies to every contract built with that file (a reusable review)."""
    if len(reason.strip()) < 10:
        raise ConfigError("a triage needs a written reason (at least 10 characters)")
    typed = source_triage_typed_data(slither_id, check, source_unit, source_sha256, reason)
    return TriagedFinding(
        slither_id=slither_id,
        check=check,
        source_unit=source_unit,
        source_sha256=source_sha256,
        reason=reason,
        reviewer=signer_address(signer),
        signature=sign_typed(signer, typed),
    )


def _require_reviewer(root: Path, signer: Any) -> None:
    if load_reviewers(root).get(signer_address(signer)) is None:
        raise Refused(
            f"{signer_address(signer)} is not a listed reviewer: it cannot triage findings"
        )


def pick_findings(
    findings: Sequence[SlitherFinding], finding_ids: Sequence[str], where: str
) -> list[SlitherFinding]:
    """The failing findings the ids (or unique prefixes) name, each once; refuses the lot
    on the first id that names none or several, before anything is signed."""
    if not finding_ids:
        raise ConfigError("name at least one finding id to triage")
    picked: list[SlitherFinding] = []
    for finding_id in finding_ids:
        matches = [f for f in findings if f.id.startswith(finding_id.strip().lower())]
        if len({f.id for f in matches}) != 1:
            raise ConfigError(
                f"{finding_id} names {'no' if not matches else 'more than one'} failing "
                f"finding of {where}"
            )
        if matches[0] not in picked:
            picked.append(matches[0])
    return picked


def source_of(finding: SlitherFinding) -> tuple[str, str]:
    """The one source file a finding lies in, for a source-bound triage."""
    place = single_source(finding.files)
    if place is None:
        files = ", ".join(sorted(u or "?" for u in finding.files)) or "no known file"
        raise ConfigError(
            f"finding {finding.id[:12]} ({finding.check}) does not lie in one known source "
            f"file ({files}): triage it in the entry, bound to the codehash"
        )
    return place


def sign_source_triages(
    findings: Sequence[SlitherFinding], reason: str, signer: Any
) -> list[TriagedFinding]:
    """Source-bound records for these findings, all with one signer (one password)."""
    places = [source_of(f) for f in findings]  # refuse before signing anything
    return [
        sign_source_triage(f.id, f.check, unit, digest, reason, signer)
        for f, (unit, digest) in zip(findings, places, strict=True)
    ]


def entry_findings(
    path: Path, finding_ids: Sequence[str], *, per_source: bool = False
) -> list[SlitherFinding]:
    """The failing findings of an entry the ids name (checked before anyone signs)."""
    path = Path(path)
    entry = read_entry(path)
    if entry.slither is None:
        raise ConfigError(f"{path.name} records no Slither result to triage")
    kept = sidecar(path, "slither.json")
    if not kept.is_file():
        raise ConfigError(f"{kept.name} (the Slither result kept beside the entry) is missing")
    failing_ids = set(entry.slither.failing)
    failing = [f for f in slither_findings(json.loads(kept.read_text())) if f.id in failing_ids]
    if not {f.id for f in failing} and failing_ids:
        raise ConfigError(f"{kept.name} does not hold the findings {path.name} records")
    picked = pick_findings(failing, finding_ids, path.name)
    if per_source:
        for finding in picked:
            source_of(finding)
    return picked


def triage_findings(
    path: Path,
    finding_ids: Sequence[str],
    reason: str,
    signer: Any,
    *,
    root: Path | None = None,
    per_source: bool = False,
) -> list[TriagedFinding]:
    """Waive failing Slither findings of a proposed entry (voids its approvals).

    Bound to the entry's codehash, or with `per_source` to the one source file each
    finding lies in (the same records then serve every contract built with that file)."""
    path = Path(path)
    _require_reviewer(_root_of(path, root), signer)
    entry = read_entry(path)
    picked = entry_findings(path, finding_ids, per_source=per_source)
    assert entry.slither is not None  # entry_findings refuses an entry without one
    if per_source:
        records = sign_source_triages(picked, reason, signer)
    else:
        records = [
            sign_triage(f.id, f.check, entry.slither.codehash, reason, signer) for f in picked
        ]
    ids = {r.slither_id for r in records}
    triaged = [t for t in entry.slither.triaged if t.slither_id not in ids] + records
    sources = {k: v for k, v in entry.slither.failing_sources.items() if k not in ids}
    sources |= {r.slither_id: r.source_sha256 for r in records if r.source_sha256}
    updated = entry.model_copy(
        update={
            "slither": entry.slither.model_copy(
                update={"triaged": triaged, "failing_sources": sources}
            )
        }
    )
    write_entry(path, updated)
    return records


def triage_finding(
    path: Path, finding_id: str, reason: str, signer: Any, *, root: Path | None = None
) -> TriagedFinding:
    """Waive one failing Slither finding of a proposed entry (voids its approvals)."""
    return triage_findings(path, [finding_id], reason, signer, root=root)[0]


def source_findings(
    sources: Path | SourceBundle,
    finding_ids: Sequence[str],
    *,
    root: Path,
    settings: CompilerSettings | None = None,
) -> list[SlitherFinding]:
    """Vet the sources (cached) and pick the failing findings the ids name, each lying
    in one source file (checked before anyone signs)."""
    from defiagent.vetting.vet import vet_sources

    vetting = vet_sources(sources, policy=load_policy(root), settings=settings)
    gate = vetting.report.slither
    if gate is None:
        ctx = vetting.ctx
        why = getattr(ctx, "analysis_error", None) or ctx.slither_error or "Slither did not run"
        raise ConfigError(f"nothing to triage: {why}")
    picked = pick_findings(gate.failing, finding_ids, vetting.report.target)
    for finding in picked:
        source_of(finding)
    return picked


def triage_sources(
    sources: Path | SourceBundle,
    finding_ids: Sequence[str],
    reason: str,
    signer: Any,
    *,
    root: Path,
    settings: CompilerSettings | None = None,
) -> list[TriagedFinding]:
    """Source-bound triage of failing findings of a source vet (for `vet --triage`)."""
    _require_reviewer(root, signer)
    picked = source_findings(sources, finding_ids, root=root, settings=settings)
    return sign_source_triages(picked, reason, signer)


def merge_triage_file(path: Path, records: Sequence[TriagedFinding]) -> list[TriagedFinding]:
    """Add records to a triage file (created if absent), replacing older ones for the same
    finding and binding; returns everything the file now holds."""
    path = Path(path)
    existing = load_triage_file(path) if path.is_file() else []

    def key(t: TriagedFinding) -> tuple[str | None, ...]:
        return (t.slither_id, t.check, t.codehash, t.source_unit, t.source_sha256)

    fresh = {key(r) for r in records}
    merged = [t for t in existing if key(t) not in fresh] + list(records)
    write_triage_file(path, merged)
    return merged


def attach_audit(path: Path, audit: AuditRecord | Path) -> AllowlistEntry:
    """Add an audit record to an entry (voids its approvals)."""
    record = audit if isinstance(audit, AuditRecord) else load_audit(Path(audit))
    entry = read_entry(path)
    updated = entry.model_copy(update={"audits": [*entry.audits, record]})
    write_entry(path, updated)
    return updated


def approve_entry(
    path: Path,
    signer: Any,
    *,
    root: Path | None = None,
    now: datetime | None = None,
    today: date | None = None,
    reviewers_sha256: str | None = None,
) -> ApprovalResult:
    """Add one reviewer's EIP-712 signature over the entry's canonical hash.

    `signer` is an eth-account LocalAccount or any Signer (`.address`,
    `.sign_typed_data(dict) -> bytes`). Refuses to sign an entry whose automated checks
    fail: a finding must be triaged, an audit attached, before anyone signs.
    """
    path = Path(path)
    root = _root_of(path, root)
    reviewers = load_reviewers(root, expected_sha256=reviewers_sha256)
    policy = load_policy(root)
    entry = read_entry(path)
    if entry.revoked:
        raise Refused(f"{path.name} is revoked: propose it again instead")
    today = today or datetime.now(UTC).date()
    problems = structure_problems(path, entry)
    problems += [
        o.reason
        for o in offline_outcomes(entry, policy=policy, reviewers=reviewers, today=today)
        if o.status == "fail" and o.check != "approvals"
    ]
    if problems:
        raise Refused(
            f"will not sign {path.name}: {problems[0]}"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
        )
    approval = sign_approval(entry, signer, reviewers, now=now)
    updated, dropped = add_approval(entry, approval, reviewers)
    write_entry(path, updated)
    _, valid = approval_problems(updated, reviewers)
    return ApprovalResult(path, updated, approval.reviewer, valid, reviewers.threshold, dropped)


def revoke_entry(path: Path, reason: str) -> AllowlistEntry:
    """Mark an entry revoked: never active again. Needs no signature (it only narrows)."""
    if not reason.strip():
        raise ConfigError("say why the entry is revoked")
    entry = read_entry(path)
    updated = entry.model_copy(update={"revoked": True, "revoked_reason": reason.strip()})
    write_entry(path, updated)
    return updated


def load_triage_file(path: Path) -> list[TriagedFinding]:
    """Signed triage records from a TOML file of `[[triage]]` tables."""
    from pydantic import ValidationError

    from defiagent.allowlist.tomlio import read_toml, validation_message

    data = read_toml(path)
    try:
        return [TriagedFinding.model_validate(t) for t in data.get("triage", [])]
    except ValidationError as exc:
        raise ConfigError(
            f"{path} holds an invalid triage record: {validation_message(exc)}"
        ) from exc


def write_triage_file(path: Path, records: Sequence[TriagedFinding]) -> None:
    import tomli_w

    from defiagent.allowlist.tomlio import to_toml_value

    Path(path).write_text(tomli_w.dumps({"triage": [to_toml_value(r) for r in records]}))
