"""Vet sources, or a deployed contract: gather the facts, then let every check judge them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

from eth_utils import to_checksum_address
from pydantic import BaseModel, ConfigDict, computed_field

from defiagent.allowlist.models import (
    AllowlistEntry,
    AuditRecord,
    ReviewBasis,
    TriagedFinding,
    bytecode_review_line,
)
from defiagent.allowlist.policy import Policy
from defiagent.allowlist.reviewers import Reviewers
from defiagent.errors import ConfigError, InfraError, ToolMissing
from defiagent.vetting.bundle import CompilerSettings, SourceBundle, bundle_from_path
from defiagent.vetting.bytecode import codehash as keccak_code
from defiagent.vetting.checks import run_checks
from defiagent.vetting.compiler import Compilation, compile_bundle, resolve_version
from defiagent.vetting.context import CodeUnit, Outcome, VetContext
from defiagent.vetting.mythril import MythrilResult, analyse_runtime, myth_path, require_myth
from defiagent.vetting.onchain import ChainReader
from defiagent.vetting.proxy import ProxyResolution, resolve_proxy
from defiagent.vetting.slither_gate import (
    GateResult,
    analyse,
    bind_to_codehash,
    cached_for_codehash,
    evaluate,
)
from defiagent.vetting.source_verify import SourceMatch, verify_source
from defiagent.vetting.sourcify import SourcifyClient
from defiagent.vetting.verdict import CouldNotAnalyse, Verdict

BYTECODE_ONLY_SETTING = '[sources] when_missing = "bytecode-only"'


class UnitReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    label: str
    address: str | None
    codehash: str
    source_match: SourceMatch | None = None


class VetReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    target: str
    kind: Literal["sources", "address", "entry"]
    chain_id: int | None = None
    address: str | None = None
    block: int | None = None
    units: list[UnitReport] = []
    proxy: ProxyResolution | None = None
    slither: GateResult | None = None
    slither_note: str | None = None
    mythril: list[MythrilResult] | None = None
    mythril_note: str | None = None
    mythril_error: str | None = None
    review_basis: ReviewBasis = "sources"
    outcomes: list[Outcome]

    @computed_field  # type: ignore[prop-decorator]  # mypy: no decorator over a property
    @property
    def review_note(self) -> str | None:
        """For a bytecode-only review, the line that says so plainly; None otherwise."""
        if self.review_basis != "bytecode":
            return None
        if self.mythril_error:
            found = f"could not analyse ({self.mythril_error})"
        elif self.mythril:
            found = "; ".join(m.summary().describe() for m in self.mythril)
        else:
            found = "not run"
        return bytecode_review_line(found)

    @computed_field  # type: ignore[prop-decorator]  # mypy: no decorator over a property
    @property
    def passed(self) -> bool:
        return not any(o.status == "fail" for o in self.outcomes)

    @computed_field  # type: ignore[prop-decorator]  # mypy: no decorator over a property
    @property
    def verdict(self) -> Verdict:
        """accepted; could-not-analyse when every failure is an analysis that did not run
        to the end; refused otherwise (a real finding or check failed)."""
        failures = self.failures()
        if not failures:
            return "accepted"
        if all(o.unanalysed for o in failures):
            return "could-not-analyse"
        return "refused"

    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "fail"]


@dataclass
class Vetting:
    """A report plus what propose needs to write an entry (the context, Slither's JSON)."""

    report: VetReport
    ctx: VetContext
    slither_result: dict | None = None


def _today(today: date | None) -> date:
    return today or datetime.now(UTC).date()


def _report(target: str, ctx: VetContext) -> VetReport:
    return VetReport(
        target=target,
        kind=ctx.kind,
        chain_id=ctx.chain_id,
        address=ctx.address,
        block=ctx.block,
        units=[
            UnitReport(
                label=u.label, address=u.address, codehash=u.codehash, source_match=u.source_match
            )
            for u in ctx.units
        ],
        proxy=ctx.proxy,
        slither=ctx.slither,
        slither_note=ctx.slither_note,
        mythril=ctx.mythril,
        mythril_note=ctx.mythril_note,
        mythril_error=ctx.mythril_error,
        review_basis=ctx.review_basis,
        outcomes=run_checks(ctx),
    )


def _as_bundle(sources: Path | SourceBundle, settings: CompilerSettings | None) -> SourceBundle:
    if isinstance(sources, SourceBundle):
        return sources.with_settings(settings) if settings else sources
    return bundle_from_path(Path(sources), settings=settings)


def vet_sources(
    sources: Path | SourceBundle,
    *,
    policy: Policy,
    reviewers: Reviewers | None = None,
    triage: Sequence[TriagedFinding] = (),
    settings: CompilerSettings | None = None,
    today: date | None = None,
) -> Vetting:
    """Compile the sources and run the Slither gate (triage binds to the compiled codehashes)."""
    bundle = _as_bundle(sources, settings)
    ctx = VetContext(kind="sources", policy=policy, reviewers=reviewers, today=_today(today))
    result = None
    try:
        # Slither first: it compiles the bundle once (while Slither loads) and reads that
        # output; the compilation below is then a cache read.
        result, cached = analyse(bundle, solc_version=resolve_version(bundle))
        compilation = compile_bundle(bundle)
        ctx.compilation = compilation
        ctx.slither = evaluate(
            result,
            policy=policy.slither,
            triage=list(triage),
            reviewers=reviewers,
            codehashes=compilation.codehashes(),
            cached=cached,
        )
        if cached:
            ctx.slither_note = "cached result for these exact sources"
    except ToolMissing:
        raise
    except (ConfigError, InfraError, CouldNotAnalyse) as exc:
        # Bad sources or a failed analyser: a verdict (could not analyse), not exit 3.
        ctx.analysis_error = f"the sources cannot be analysed: {exc}"
    if ctx.compilation is not None:
        roots = set(bundle.roots)
        run_mythril(
            ctx,
            [
                (c.fqn, c.runtime, c.codehash or "")
                for c in ctx.compilation.deployable()
                if c.unit in roots and (bundle.target is None or c.fqn == bundle.target)
            ],
        )
    return Vetting(report=_report(bundle.origin or "sources", ctx), ctx=ctx, slither_result=result)


def _units(
    reader: ChainReader, address: str, code: bytes, proxy: ProxyResolution
) -> list[CodeUnit]:
    if not proxy.is_proxy:
        return [CodeUnit("contract", address, keccak_code(code), code)]
    units = [CodeUnit("proxy", address, keccak_code(code), code)]
    if proxy.implementation and proxy.implementation_code:
        units.append(
            CodeUnit(
                "implementation",
                proxy.implementation,
                proxy.implementation_codehash or "",
                proxy.implementation_code,
            )
        )
    return units


def vet_address(
    rpc: Any,
    address: str,
    *,
    policy: Policy,
    reviewers: Reviewers | None = None,
    sources: Path | SourceBundle | None = None,
    sourcify: SourcifyClient | None = None,
    entry: AllowlistEntry | None = None,
    audits: Sequence[AuditRecord] = (),
    triage: Sequence[TriagedFinding] = (),
    settings: CompilerSettings | None = None,
    report_base: Path | None = None,
    today: date | None = None,
) -> Vetting:
    """Resolve proxies, fetch code, verify sources, run the Slither gate, judge audits."""
    address = to_checksum_address(address)
    reader = rpc if isinstance(rpc, ChainReader) else ChainReader(rpc)
    ctx = VetContext(
        kind="address",
        policy=policy,
        reviewers=reviewers,
        today=_today(today),
        chain_id=reader.chain_id,
        address=address,
        block=reader.block if isinstance(reader.block, int) else None,
        entry=entry,
        audits=[*audits, *(entry.audits if entry else [])],
        report_base=report_base,
    )
    code = reader.code(address)
    ctx.proxy = resolve_proxy(reader, address, code) if code else ProxyResolution()
    ctx.units = _units(reader, address, code, ctx.proxy) if code else []
    if not code:
        ctx.fetch_error = f"there is no code at {address} (block {reader.block})"
        return Vetting(report=_report(address, ctx), ctx=ctx)

    # Sources: one bundle for every unit (a folder may hold proxy and implementation), or
    # Sourcify per address.
    shared = _as_bundle(sources, settings) if sources is not None else None
    bundles: dict[str, SourceBundle | None] = {}
    compilations: dict[str, Compilation | None] = {}
    for unit in ctx.units:
        bundle = shared
        if bundle is None and sourcify is not None and unit.address:
            bundle = sourcify.bundle(reader.chain_id, unit.address)
        bundles[unit.label] = bundle
        if bundle is not None:
            unit.source_match, compilations[unit.label] = verify_source(bundle, unit.code)

    logic = ctx.logic
    assert logic is not None
    triage_all = [*triage, *(entry.slither.triaged if entry and entry.slither else [])]
    bundle = bundles.get(logic.label)
    result = None
    if bundle is not None:
        match = logic.source_match
        if match is not None and match.compile_error:
            ctx.analysis_error = f"Slither was not run: {match.reason}"
        elif match is not None and not match.meets(policy.sources.min_match):
            ctx.slither_error = (
                f"Slither was not run: the sources do not describe the deployed {logic.label} code "
                f"({match.label()})"
            )
        else:
            try:
                analysed = (
                    bundle.with_settings(match.settings) if match and match.settings else bundle
                )
                version = (
                    match.solc_version if match and match.solc_version else resolve_version(bundle)
                )
                result, cached = analyse(analysed, solc_version=version)
                if match is not None and match.level in ("full", "partial"):
                    bind_to_codehash(result, logic.codehash)
                if cached:
                    ctx.slither_note = "cached result for these exact sources"
            except ToolMissing as exc:
                ctx.slither_error = f"Slither could not run: {exc}"
            except (ConfigError, InfraError, CouldNotAnalyse) as exc:
                ctx.analysis_error = f"Slither could not analyse the sources: {exc}"
        compilation = compilations.get(logic.label)
        if match is not None and match.contract and compilation is not None:
            compiled = compilation.get(match.contract)
            ctx.abi = compiled.abi if compiled else None
    else:
        result = cached_for_codehash(logic.codehash)
        if result is not None:
            ctx.slither_from_codehash = True
            ctx.slither_note = (
                "reused the Slither result cached for this codehash; its sources matched "
                "the deployed code when it was made"
            )
        elif entry is not None and entry.slither is not None:
            pass  # judge the Slither result recorded in the entry
        elif policy.sources.when_missing == "bytecode-only":
            # The policy's opt-in: judge the runtime code alone (Mythril, required below).
            ctx.review_basis = "bytecode"
        else:
            ctx.slither_error = (
                f"no sources for the {logic.label} code, so Slither cannot run "
                "(give --sources DIR or a Sourcify URL, or allow a review of the bytecode "
                f"alone with {BYTECODE_ONLY_SETTING} in the policy file)"
            )
    if result is not None:
        ctx.slither = evaluate(
            result,
            policy=policy.slither,
            triage=triage_all,
            reviewers=reviewers,
            codehashes={logic.codehash},
            cached=ctx.slither_note is not None,
        )
    elif ctx.slither_error is None and entry is not None and entry.slither is not None:
        ctx.slither_note = "judged from the Slither result recorded in the entry"
    # Mythril on the logic code; on every code when that is all the review has to go on.
    judged = ctx.units if ctx.bytecode_only else [logic]
    run_mythril(ctx, [(f"{u.label} {u.address}", u.code.hex(), u.codehash) for u in judged])
    return Vetting(report=_report(address, ctx), ctx=ctx, slither_result=result)


def run_mythril(ctx: VetContext, targets: list[tuple[str, str, str]]) -> None:
    """Mythril on each (label, runtime hex, codehash), as the policy asks.

    Off: nothing. Optional and not installed: a note. Required and not installed: exit 3
    (ToolMissing). Code with unlinked library placeholders cannot run, so it is left out.
    A bytecode-only review (no sources) always runs it: Mythril is all it is judged on."""
    policy = ctx.policy.mythril
    if ctx.bytecode_only:
        require_myth("reviewing a contract without sources on its bytecode alone needs it")
    elif policy.use == "off":
        return
    if myth_path() is None:
        if policy.use == "required":
            require_myth()
        ctx.mythril_note = "Mythril is not installed: skipped (the policy makes it optional)"
        return
    runnable = [t for t in targets if t[1] and "__" not in t[1] and t[2]]
    left_out = [t[0] for t in targets if t not in runnable]
    if left_out:
        ctx.mythril_note = f"Mythril left out code with unlinked libraries: {', '.join(left_out)}"
    results = []
    try:
        for label, runtime, codehash in runnable:
            results.append(
                analyse_runtime(
                    runtime,
                    contract=label,
                    codehash=codehash,
                    execution_timeout=policy.execution_timeout,
                )
            )
    except CouldNotAnalyse as exc:
        ctx.mythril_error = exc.message
    ctx.mythril = results


def reader_for(rpc: Any) -> ChainReader:
    try:
        return rpc if isinstance(rpc, ChainReader) else ChainReader(rpc)
    except InfraError:
        raise
    except Exception as exc:
        raise InfraError(f"cannot reach the RPC: {exc}") from exc
