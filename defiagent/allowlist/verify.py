"""`verify`: every entry's schema and signatures, and on chain, its code and proxy now."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, computed_field

from defiagent.allowlist.models import AllowlistEntry
from defiagent.allowlist.policy import Policy, load_policy
from defiagent.allowlist.reviewers import Reviewers, load_reviewers
from defiagent.allowlist.store import iter_entry_paths
from defiagent.allowlist.tomlio import read_entry
from defiagent.chain.rpc import RpcError
from defiagent.errors import DefiagentError
from defiagent.vetting.bytecode import codehash
from defiagent.vetting.checks import run_checks
from defiagent.vetting.context import CodeUnit, Outcome, VetContext, pinned_units
from defiagent.vetting.onchain import ChainReader
from defiagent.vetting.proxy import resolve_proxy


class EntryVerdict(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: str
    chain_id: int | None = None
    address: str | None = None
    name: str | None = None
    revoked: bool = False
    checked_on_chain: bool = False
    outcomes: list[Outcome]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def passed(self) -> bool:
        return not any(o.status == "fail" for o in self.outcomes)


class VerifyReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    root: str
    rpc_chain_id: int | None = None
    block: int | None = None
    problems: list[str] = []  # problems with the allowlist as a whole
    entries: list[EntryVerdict] = []

    @computed_field  # type: ignore[prop-decorator]
    @property
    def passed(self) -> bool:
        return not self.problems and all(e.passed for e in self.entries)


def offline_outcomes(
    entry: AllowlistEntry,
    *,
    policy: Policy,
    reviewers: Reviewers | None,
    today: date,
    path: Path | None = None,
) -> list[Outcome]:
    ctx = VetContext(
        kind="entry",
        policy=policy,
        reviewers=reviewers,
        today=today,
        chain_id=entry.chain_id,
        address=entry.address,
        entry=entry,
        audits=list(entry.audits),
        units=pinned_units(entry),
        online=False,
        entry_path=path,
    )
    return run_checks(ctx)


def online_outcomes(
    entry: AllowlistEntry,
    reader: ChainReader,
    *,
    policy: Policy,
    reviewers: Reviewers | None,
    today: date,
    path: Path | None = None,
) -> list[Outcome]:
    ctx = VetContext(
        kind="entry",
        policy=policy,
        reviewers=reviewers,
        today=today,
        chain_id=entry.chain_id,
        address=entry.address,
        block=reader.block if isinstance(reader.block, int) else None,
        entry=entry,
        audits=list(entry.audits),
        entry_path=path,
    )
    try:
        code = reader.code(entry.address)
        ctx.units = [CodeUnit("contract", entry.address, codehash(code), code)]
        if code:
            ctx.proxy = resolve_proxy(reader, entry.address, code)
            if ctx.proxy.is_proxy:
                ctx.units[0].label = "proxy"
    except RpcError as exc:  # fail closed: an entry we cannot check is not verified
        ctx.fetch_error = f"the chain could not be read: {exc}"
    return run_checks(ctx)


def verify_allowlist(
    root: Path,
    w3_or_rpc_url: Any = None,
    *,
    reviewers_sha256: str | None = None,
    today: date | None = None,
) -> VerifyReport:
    """Schema and signatures of every entry; with an RPC, also its code and proxy now.

    Entries of other chains than the RPC's are checked offline only (and say so).
    """
    root = Path(root)
    today = today or datetime.now(UTC).date()
    problems: list[str] = []
    reviewers: Reviewers | None = None
    try:
        reviewers = load_reviewers(root, expected_sha256=reviewers_sha256)
    except DefiagentError as exc:
        problems.append(str(exc))
    try:
        policy = load_policy(root)
    except DefiagentError as exc:
        problems.append(str(exc))
        policy = Policy()
    reader = ChainReader(w3_or_rpc_url) if w3_or_rpc_url is not None else None
    verdicts = []
    for path in iter_entry_paths(root):
        verdicts.append(_verify_one(path, reader, policy=policy, reviewers=reviewers, today=today))
    seen: dict[tuple, str] = {}
    for v in verdicts:
        key = (v.chain_id, v.address)
        if v.address and key in seen:
            problems.append(f"{v.path} and {seen[key]} are entries for the same contract")
        seen[key] = v.path
    return VerifyReport(
        root=str(root),
        rpc_chain_id=reader.chain_id if reader else None,
        block=reader.block if reader and isinstance(reader.block, int) else None,
        problems=problems,
        entries=verdicts,
    )


def _verify_one(
    path: Path,
    reader: ChainReader | None,
    *,
    policy: Policy,
    reviewers: Reviewers | None,
    today: date,
) -> EntryVerdict:
    try:
        entry = read_entry(path)
    except DefiagentError as exc:
        return EntryVerdict(
            path=str(path), outcomes=[Outcome(check="entry-schema", status="fail", reason=str(exc))]
        )
    base = {
        "path": str(path),
        "chain_id": entry.chain_id,
        "address": entry.address,
        "name": entry.name,
    }
    if entry.revoked:
        note = f"revoked: {entry.revoked_reason or 'no reason given'}; never active"
        return EntryVerdict(
            **base,
            revoked=True,
            outcomes=[Outcome(check="entry-schema", status="skip", reason=note)],
        )
    if reader is not None and reader.chain_id == entry.chain_id:
        outcomes = online_outcomes(
            entry, reader, policy=policy, reviewers=reviewers, today=today, path=path
        )
        return EntryVerdict(**base, checked_on_chain=True, outcomes=outcomes)
    outcomes = offline_outcomes(entry, policy=policy, reviewers=reviewers, today=today, path=path)
    if reader is not None:
        outcomes.append(
            Outcome(
                check="codehash-pinned",
                status="skip",
                reason=f"not checked on chain: the RPC serves chain {reader.chain_id}",
            )
        )
    return EntryVerdict(**base, outcomes=outcomes)
