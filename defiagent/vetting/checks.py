"""Vetting checks: one small class per check, metadata on the class, one registry.

Each check looks at a VetContext and returns outcomes with a reason a person can read.
`vet`, `allowlist verify`, the review report and `defiagent vet --list-checks` all come
from this registry (the Slither detector model: metadata once, used everywhere).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from defiagent.allowlist.approvals import approval_problems
from defiagent.allowlist.functions import abi_signatures, function_problems
from defiagent.vetting.audits import judge
from defiagent.vetting.bytecode import SELFDESTRUCT, opcodes
from defiagent.vetting.context import Outcome, Status, VetContext, pinned_units
from defiagent.vetting.slither_gate import summary_problems


class Check:
    id: ClassVar[str]
    description: ClassVar[str]
    severity: ClassVar[Literal["error", "warning"]] = "error"
    applies_to: ClassVar[tuple[str, ...]] = ("sources", "address", "entry")

    def run(self, ctx: VetContext) -> list[Outcome]:
        raise NotImplementedError

    def outcome(self, status: Status, reason: str, subject: str = "") -> Outcome:
        if status == "fail" and self.severity == "warning":
            status = "warn"
        return Outcome(check=self.id, status=status, reason=reason, subject=subject)


REGISTRY: dict[str, type[Check]] = {}


def register(cls: type[Check]) -> type[Check]:
    REGISTRY[cls.id] = cls
    return cls


def run_checks(ctx: VetContext) -> list[Outcome]:
    out: list[Outcome] = []
    for cls in REGISTRY.values():
        if ctx.kind in cls.applies_to:
            out.extend(cls().run(ctx))
    return out


def _short(h: str | None) -> str:
    return f"{h[:10]}…" if h else "none"


@register
class EntrySchema(Check):
    id = "entry-schema"
    description = (
        "The entry file parses against the schema and sits at <chain_id>/<checksummed address>.toml, "
        "as its content says."
    )
    applies_to = ("entry",)

    def run(self, ctx: VetContext) -> list[Outcome]:
        if ctx.entry is None or ctx.entry_path is None:
            return []
        from defiagent.allowlist.store import structure_problems

        problems = structure_problems(ctx.entry_path, ctx.entry)
        if problems:
            return [self.outcome("fail", p) for p in problems]
        return [self.outcome("pass", "schema and file location hold")]


@register
class CodePresent(Check):
    id = "code-present"
    description = (
        "There is runtime code at the address (a contract, not an account or a destroyed one)."
    )
    applies_to = ("address", "entry")

    def run(self, ctx: VetContext) -> list[Outcome]:
        if not ctx.online:
            return []
        if ctx.fetch_error:
            return [self.outcome("fail", ctx.fetch_error, ctx.address or "")]
        unit = next((u for u in ctx.units if u.label in ("contract", "proxy")), None)
        if unit is None or not unit.code:
            return [self.outcome("fail", f"there is no code at {ctx.address} (block {ctx.block})")]
        return [self.outcome("pass", f"{len(unit.code)} bytes of code, codehash {unit.codehash}")]


@register
class ProxyResolved(Check):
    id = "proxy-resolved"
    description = (
        "A proxy is resolved to its implementation (EIP-1967, beacon, EIP-1822, EIP-1167, "
        "OpenZeppelin legacy, Safe); code that delegates elsewhere is flagged."
    )
    applies_to = ("address", "entry")

    def run(self, ctx: VetContext) -> list[Outcome]:
        p = ctx.proxy
        if p is None:
            return []
        if p.is_proxy:
            out = [self.outcome("fail", problem) for problem in p.problems]
            if not p.problems:
                admin = f", admin {p.admin}" if p.admin else ""
                beacon = f", beacon {p.beacon}" if p.beacon else ""
                out.append(
                    self.outcome(
                        "pass",
                        f"{p.kind} proxy to {p.implementation} (codehash "
                        f"{_short(p.implementation_codehash)}){beacon}{admin}",
                    )
                )
            return out
        if p.delegates_elsewhere:
            return [
                Outcome(
                    check=self.id,
                    status="warn",
                    reason="the code can DELEGATECALL but follows no known proxy layout: "
                    "whatever it delegates to is not pinned; review it by hand",
                )
            ]
        return [self.outcome("pass", "not a proxy")]


@register
class CodehashPinned(Check):
    id = "codehash-pinned"
    description = "The runtime codehash on chain is the one the entry pins (no redeploy, no swap)."
    applies_to = ("address", "entry")

    def run(self, ctx: VetContext) -> list[Outcome]:
        if ctx.entry is None or ctx.fetch_error or not ctx.online:
            return []
        unit = next((u for u in ctx.units if u.label in ("contract", "proxy")), None)
        current = unit.codehash if unit and unit.code else None
        if current != ctx.entry.codehash:
            return [
                self.outcome(
                    "fail",
                    f"the code at {ctx.entry.address} has codehash {current or 'none (no code)'}, "
                    f"not the pinned {ctx.entry.codehash}",
                )
            ]
        return [self.outcome("pass", f"codehash {_short(current)} as pinned")]


@register
class ImplementationPinned(Check):
    id = "implementation-pinned"
    description = "A proxy still points at the pinned implementation, codehash, beacon and admin."
    applies_to = ("address", "entry")

    def run(self, ctx: VetContext) -> list[Outcome]:
        if ctx.entry is None or ctx.proxy is None or ctx.fetch_error or not ctx.online:
            return []
        pinned, now = ctx.entry.proxy, ctx.proxy
        if pinned is None:
            if now.is_proxy:
                return [
                    self.outcome(
                        "fail",
                        f"the entry pins no proxy, but the contract is now a {now.kind} proxy "
                        f"to {now.implementation}",
                    )
                ]
            return []
        if not now.is_proxy:
            return [
                self.outcome("fail", f"the entry pins a {pinned.kind} proxy; none is found now")
            ]
        out = []
        pairs = [
            ("kind", pinned.kind, now.kind),
            ("implementation", pinned.implementation, now.implementation),
            (
                "implementation codehash",
                pinned.implementation_codehash,
                now.implementation_codehash,
            ),
            ("beacon", pinned.beacon, now.beacon),
            ("admin", pinned.admin, now.admin),
        ]
        for what, want, have in pairs:
            if (want or None) != (have or None):
                out.append(
                    self.outcome("fail", f"the proxy's {what} is now {have}, not the pinned {want}")
                )
        if not out:
            out.append(self.outcome("pass", f"implementation {pinned.implementation} as pinned"))
        return out


@register
class SourceMatches(Check):
    id = "source-match"
    description = (
        "The sources compile (with the matching solc) to the deployed runtime code, metadata "
        "tail and immutables aside; the policy sets the level required."
    )
    applies_to = ("address",)

    def run(self, ctx: VetContext) -> list[Outcome]:
        minimum = ctx.policy.sources.min_match
        out = []
        logic = ctx.logic
        for unit in ctx.units:
            m = unit.source_match
            subject = f"{unit.label} {unit.address}"
            if m is None:
                recorded = ctx.entry.slither if ctx.entry is not None else None
                if unit is logic and ctx.slither_from_codehash:
                    out.append(self.outcome("pass", ctx.slither_note or "", subject))
                elif (
                    unit is logic
                    and recorded is not None
                    and recorded.codehash == unit.codehash
                    and recorded.source_match in ("full", "partial")
                ):
                    reason = f"{recorded.source_match} match, as recorded in the entry (no sources given now)"
                    out.append(self.outcome("pass", reason, subject))
                elif ctx.bytecode_only:
                    reason = (
                        f"bytecode-only review: no sources were given for the {unit.label} "
                        "code, so it is bound to none"
                    )
                    out.append(
                        Outcome(check=self.id, status="warn", subject=subject, reason=reason)
                    )
                elif unit is logic and minimum != "none":
                    reason = f"no sources were given for the {unit.label} code"
                    out.append(self.outcome("fail", reason, subject))
                else:
                    reason = f"no sources were given for the {unit.label} code"
                    out.append(
                        Outcome(check=self.id, status="warn", subject=subject, reason=reason)
                    )
                continue
            if m.meets(minimum):
                status: Status = "pass" if m.level in ("full", "partial") else "warn"
                out.append(self.outcome(status, f"{m.label()}: {m.reason}", subject))
            else:
                failed = self.outcome(
                    "fail", f"{m.label()} (policy needs {minimum}): {m.reason}", subject
                )
                # Sources that do not compile were never compared: could not analyse.
                out.append(failed.model_copy(update={"unanalysed": m.compile_error}))
        return out


@register
class SlitherGate(Check):
    id = "slither-gate"
    description = (
        "Slither (with defiagent's detectors) finds nothing above the policy threshold that a "
        "reviewer has not triaged with a signed, written reason."
    )

    def run(self, ctx: VetContext) -> list[Outcome]:
        if ctx.bytecode_only:
            return self._bytecode_only(ctx)
        if ctx.kind == "entry":
            return self._recorded(ctx)
        gate = ctx.slither
        if gate is None:
            if (
                ctx.slither_error is None
                and ctx.entry is not None
                and ctx.entry.slither is not None
            ):
                return self._recorded(ctx)  # no sources now: judge what the reviewers signed
            if ctx.analysis_error is not None:
                failed = self.outcome("fail", ctx.analysis_error)
                return [failed.model_copy(update={"unanalysed": True})]
            return [self.outcome("fail", ctx.slither_error or "Slither did not run")]
        out = []
        for f in gate.blocking:
            out.append(self.outcome("fail", f"{f.label()}: {f.description} [id {f.id[:12]}]"))
        for w in gate.waived:
            out.append(
                Outcome(
                    check=self.id,
                    status="pass",
                    reason=f"{w.finding.label()} waived by {w.triage.reviewer}: {w.triage.reason}",
                )
            )
        for problem in gate.triage_problems:
            out.append(Outcome(check=self.id, status="warn", reason=problem))
        if gate.passed:
            note = f" ({ctx.slither_note})" if ctx.slither_note else ""
            counts = ", ".join(f"{n} {k}" for k, n in sorted(gate.counts.items())) or "no findings"
            out.append(
                self.outcome(
                    "pass", f"Slither {gate.slither_version}: {counts}; none blocking{note}"
                )
            )
        return out

    def _bytecode_only(self, ctx: VetContext) -> list[Outcome]:
        """No sources, so no Slither: allowed only while the policy opts in to it."""
        if ctx.policy.sources.when_missing != "bytecode-only":
            return [
                self.outcome(
                    "fail",
                    "the entry was reviewed on its bytecode alone (no sources, no Slither), "
                    'which the policy no longer allows ([sources] when_missing = "bytecode-only")',
                )
            ]
        reason = "bytecode-only review: no sources, so Slither was not run"
        return [Outcome(check=self.id, status="warn", reason=reason)]

    def _recorded(self, ctx):
        entry, logic = ctx.entry, ctx.logic
        if entry is None:
            return []
        if entry.slither is None:
            return [self.outcome("fail", "the entry records no Slither result")]
        codehash = (
            logic.codehash
            if logic
            else (entry.proxy.implementation_codehash if entry.proxy else entry.codehash)
        )
        problems = summary_problems(entry.slither, ctx.reviewers, codehash)
        if problems:
            return [self.outcome("fail", p) for p in problems]
        return [
            self.outcome(
                "pass",
                f"recorded Slither result: {len(entry.slither.failing)} failing, all triaged",
            )
        ]


@register
class MythrilGate(Check):
    id = "mythril"
    description = (
        "Mythril (symbolic execution of the runtime bytecode, time-bounded) finds no "
        "high-severity issue; when the policy turns it on."
    )
    applies_to = ("sources", "address", "entry")

    def run(self, ctx: VetContext) -> list[Outcome]:
        if ctx.kind == "entry":
            return self._recorded(ctx) if ctx.bytecode_only else []
        out = []
        if ctx.mythril_note:
            out.append(Outcome(check=self.id, status="warn", reason=ctx.mythril_note))
        if ctx.mythril_error:
            failed = self.outcome("fail", f"could not analyse: {ctx.mythril_error}")
            out.append(failed.model_copy(update={"unanalysed": True}))
        for result in ctx.mythril or []:
            for issue in result.failing:
                reason = f"{issue.label()}: {issue.description}"
                out.append(self.outcome("fail", reason, result.contract))
            if not result.failing:
                others = len(result.issues)
                cached = ", cached" if result.cached else ""
                reason = (
                    f"Mythril {result.mythril_version} ({result.execution_timeout}s{cached}): "
                    f"no high-severity issue, {others} other issue(s)"
                )
                out.append(self.outcome("pass", reason, result.contract))
        if ctx.bytecode_only and not ctx.mythril and not ctx.mythril_error:
            out.append(
                self.outcome("fail", "a bytecode-only review needs Mythril, which ran on nothing")
            )
        return out

    def _recorded(self, ctx: VetContext) -> list[Outcome]:
        """A bytecode-only entry: the Mythril records its reviewers signed, one per pinned
        code, each on that codehash and without a high-severity issue."""
        assert ctx.entry is not None
        out = []
        for unit in pinned_units(ctx.entry):
            subject = f"{unit.label} {unit.address}"
            record = next((m for m in ctx.entry.mythril if m.codehash == unit.codehash), None)
            if record is None:
                reason = (
                    f"a bytecode-only entry needs a Mythril result for its {unit.label} code "
                    f"(codehash {_short(unit.codehash)}); it records none"
                )
                out.append(self.outcome("fail", reason, subject))
            elif record.high:
                out += [self.outcome("fail", f"Mythril: {h}", subject) for h in record.high]
            else:
                reason = f"Mythril {record.mythril_version}: {record.describe()}, as recorded"
                out.append(self.outcome("pass", reason, subject))
        return out


@register
class AuditCoverage(Check):
    id = "audit-coverage"
    description = (
        "Each deployed code (contract, or proxy and implementation) is covered by enough audits "
        "from trusted auditors, young enough, bound to its codehash, without unresolved findings "
        "of a failing severity."
    )
    applies_to = ("address", "entry")

    def run(self, ctx: VetContext) -> list[Outcome]:
        if ctx.fetch_error and ctx.kind == "address":
            return []
        policy = ctx.policy.audits
        out = []
        if ctx.kind == "entry":
            if ctx.entry is None:
                return []
            units = pinned_units(ctx.entry)
        else:
            units = ctx.units
        for unit in units:
            if not unit.codehash:
                continue
            target = unit.target(ctx.chain_id)
            subject = f"{unit.label} {unit.address}"
            verdicts = [
                judge(a, target, policy, today=ctx.today, report_base=ctx.report_base)
                for a in ctx.audits
            ]
            valid = [v for v in verdicts if v.counts]
            for v in valid:
                for b in v.blocking:
                    out.append(self.outcome("fail", f"audit by {v.auditor}: {b}", subject))
            if len(valid) < policy.min_audits:
                why = "; ".join(
                    f"{v.auditor}: {', '.join(v.reasons)}" for v in verdicts if not v.counts
                )
                have = f"{len(valid)} valid audit(s)" + (f" ({why})" if why else " (none given)")
                out.append(
                    self.outcome(
                        "fail",
                        f"{have}, the policy needs {policy.min_audits} for codehash {_short(unit.codehash)}",
                        subject,
                    )
                )
            elif not any(v.blocking for v in valid):
                names = ", ".join(v.auditor for v in valid) or "none needed"
                out.append(self.outcome("pass", f"audited: {names}", subject))
        return out


@register
class FunctionsConsistent(Check):
    id = "functions-consistent"
    description = (
        "Allowed functions: each selector is its signature's, constraints name real arguments of "
        "a fitting type, and the function exists in the contract's ABI when the ABI is known."
    )
    applies_to = ("address", "entry")

    def run(self, ctx: VetContext) -> list[Outcome]:
        if ctx.entry is None:
            return []
        out = []
        known = abi_signatures(ctx.abi) if ctx.abi else None
        for fn in ctx.entry.functions:
            for problem in function_problems(fn):
                out.append(self.outcome("fail", problem))
            if known is not None and fn.selector not in known:
                out.append(
                    self.outcome("fail", f"{fn.signature} is not a function of this contract")
                )
        if not out:
            out.append(
                self.outcome("pass", f"{len(ctx.entry.functions)} allowed function(s) consistent")
            )
        return out


@register
class SelfdestructOpcode(Check):
    id = "selfdestruct-opcode"
    severity = "warning"
    description = (
        "The runtime code contains SELFDESTRUCT: before Cancun (EIP-6780) such code can vanish and "
        "a CREATE2 deployer can put other code at the same address. The pinned codehash catches it."
    )
    applies_to = ("address",)

    def run(self, ctx: VetContext) -> list[Outcome]:
        return [
            self.outcome("fail", f"the {u.label} code contains SELFDESTRUCT", u.address or "")
            for u in ctx.units
            if u.code and SELFDESTRUCT in opcodes(u.code)
        ]


@register
class EntryApprovals(Check):
    id = "approvals"
    description = (
        "The entry carries M-of-N valid reviewer signatures (EIP-712) over its canonical hash, "
        "and no signature that does not hold."
    )
    applies_to = ("entry",)

    def run(self, ctx: VetContext) -> list[Outcome]:
        if ctx.entry is None:
            return []
        if ctx.reviewers is None:
            return [self.outcome("fail", "there is no reviewers file to check approvals against")]
        problems, valid = approval_problems(ctx.entry, ctx.reviewers)
        if problems:
            return [self.outcome("fail", p) for p in problems]
        return [
            self.outcome("pass", f"{len(valid)} of {ctx.reviewers.threshold} required approvals")
        ]
