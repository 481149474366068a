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
from defiagent.vetting.checks import REGISTRY, run_checks
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

    @computed_field  # type: ignore[prop-decorator]  # mypy: no decorator over a property
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

    @computed_field  # type: ignore[prop-decorator]  # mypy: no decorator over a property
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


# The checks that read the chain (the others judge the entry from its own pins).
ON_CHAIN_CHECKS = ("code-present", "proxy-resolved", "codehash-pinned", "implementation-pinned")


def _online_context(
    entry: AllowlistEntry,
    reader: ChainReader,
    *,
    policy: Policy,
    reviewers: Reviewers | None,
    today: date,
    path: Path | None = None,
    catch: bool = True,
) -> VetContext:
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
        if not catch:
            raise
        ctx.fetch_error = f"the chain could not be read: {exc}"
    return ctx


def online_outcomes(
    entry: AllowlistEntry,
    reader: ChainReader,
    *,
    policy: Policy,
    reviewers: Reviewers | None,
    today: date,
    path: Path | None = None,
) -> list[Outcome]:
    ctx = _online_context(entry, reader, policy=policy, reviewers=reviewers, today=today, path=path)
    return run_checks(ctx)


def on_chain_problems(entry: AllowlistEntry, reader: ChainReader) -> list[str]:
    """What of the entry's pins no longer holds on chain at the reader's block: its code,
    and for a proxy its implementation, that implementation's codehash, beacon and admin.

    Only the checks that read the chain run (signatures, audits and triage are the offline
    checks' job). An RPC failure raises (RpcError, an InfraError): nothing was judged.
    """
    ctx = _online_context(
        entry,
        reader,
        policy=Policy(),
        reviewers=None,
        today=datetime.now(UTC).date(),
        catch=False,
    )
    return [
        o.reason
        for check_id in ON_CHAIN_CHECKS
        for o in REGISTRY[check_id]().run(ctx)
        if o.status == "fail"
    ]


def verify_allowlist(
    root: Path,
    w3_or_rpc_url: Any = None,
    *,
    reviewers_sha256: str | None = None,
    today: date | None = None,
    chain_id: int | None = None,
) -> VerifyReport:
    """Schema and signatures of every entry; with an RPC, also its code and proxy now.

    With an RPC, every active entry must be checked on chain: an entry of another chain
    than the RPC's fails (its code was not checked), and the report names both chain ids,
    so a CI job pointed at the wrong network is red, not green. `chain_id` limits the run
    to that chain's entries (an allowlist that spans several chains, one RPC per chain).
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
    for path in iter_entry_paths(root, chain_id):
        verdicts.append(_verify_one(path, reader, policy=policy, reviewers=reviewers, today=today))
    if reader is not None:
        unchecked = [
            v
            for v in verdicts
            if not v.revoked and v.chain_id is not None and not v.checked_on_chain
        ]
        if unchecked:
            chains = sorted({v.chain_id for v in unchecked if v.chain_id is not None})
            n = len(unchecked)
            problems.append(
                f"the RPC is on chain {reader.chain_id}, but {n} "
                f"{'entry is' if n == 1 else 'entries are'} for "
                f"{'chain' if len(chains) == 1 else 'chains'} {', '.join(map(str, chains))}, "
                f"so {'its' if n == 1 else 'their'} code was not checked on chain"
            )
    seen: dict[tuple[int | None, str | None], str] = {}
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
                status="fail",
                reason=f"not checked on chain: the RPC is on chain {reader.chain_id}, "
                f"this entry is for chain {entry.chain_id}",
            )
        )
    return EntryVerdict(**base, outcomes=outcomes)
