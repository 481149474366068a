"""The human review report written beside a proposed entry (markdown)."""

from __future__ import annotations

from typing import Any

from defiagent.allowlist.models import AllowlistEntry
from defiagent.allowlist.signatures import entry_hash
from defiagent.vetting.checks import REGISTRY
from defiagent.vetting.vet import VetReport

_ICON = {"pass": "PASS", "fail": "FAIL", "warn": "WARN", "skip": "skip"}
_VERDICT = {
    "accepted": "all automated checks pass",
    "refused": "CHECKS FAIL (see below)",
    "could-not-analyse": "COULD NOT ANALYSE: the code was not judged (see below)",
}


def render_review(
    entry: AllowlistEntry, report: VetReport, notes: list[str], *, round_trip: Any = None
) -> str:
    """The markdown report; `round_trip`: a token's round-trip probe (RoundTrip), if run."""
    lines = [
        f"# Review: {entry.name} ({entry.role})",
        "",
        f"- chain {entry.chain_id}, address `{entry.address}`, block {report.block}",
        f"- runtime codehash `{entry.codehash}`",
    ]
    if entry.proxy:
        p = entry.proxy
        lines += [
            f"- **{p.kind} proxy** to `{p.implementation}` (codehash `{p.implementation_codehash}`)",
            f"- proxy admin `{p.admin or 'none found'}`"
            + (f", beacon `{p.beacon}`" if p.beacon else ""),
        ]
    basis = report.review_note or entry.review_line()
    if basis:
        lines.append(f'- **{_md(basis)}** (`review_basis = "bytecode"`, signed with the entry)')
    lines += [
        f"- entry hash (what reviewers sign) `{entry_hash(entry)}`",
        "",
        f"## Verdict: {_VERDICT[report.verdict]}",
        "",
        "| check | result | reason |",
        "|---|---|---|",
    ]
    for o in report.outcomes:
        subject = f" ({o.subject})" if o.subject else ""
        icon = "COULD NOT ANALYSE" if o.unanalysed else _ICON[o.status]
        lines.append(f"| {o.check} | {icon} | {_md(o.reason)}{_md(subject)} |")
    for u in report.units:
        if u.source_match:
            lines += [
                "",
                f"Source verification of the {u.label}: {u.source_match.level}: {u.source_match.reason}",
            ]
    gate = report.slither
    if gate is not None:
        lines += ["", "## Slither findings above the threshold", ""]
        if not gate.failing:
            lines.append("None.")
        for f in gate.failing:
            waived = next((w for w in gate.waived if w.finding.id == f.id), None)
            state = (
                f"waived by {waived.triage.reviewer}: {waived.triage.reason}"
                if waived
                else "**not triaged**"
            )
            lines.append(f"- `{f.id}` {f.label()}: {_md(f.description)} ({state})")
        lines += [
            "",
            "Triage one with `defiagent allowlist triage ENTRY FINDING_ID --reason TEXT --key KEYSTORE`.",
        ]
    if report.mythril is not None or report.mythril_note:
        lines += ["", "## Mythril (runtime bytecode)", ""]
        if report.mythril_note:
            lines.append(f"- {_md(report.mythril_note)}")
        for m in report.mythril or []:
            lines.append(
                f"- {_md(m.contract)}: Mythril {m.mythril_version}, {m.execution_timeout}s, "
                f"{len(m.issues)} issue(s), {len(m.failing)} high severity"
            )
            lines += [f"  - {_md(i.label())}: {_md(i.description)}" for i in m.issues]
    if round_trip is not None:
        lines += _round_trip(round_trip)
    lines += ["", "## Allowed functions", ""]
    if not entry.functions:
        lines.append("None: the agent may not call this contract (reads only).")
    for fn in entry.functions:
        rules = ", ".join(
            f"{c.arg} {c.kind}{f' {c.value}' if c.value else ''}" for c in fn.constraints
        )
        pay = " (payable)" if fn.payable else ""
        lines.append(f"- `{fn.selector}` `{fn.signature}`{pay}" + (f": {rules}" if rules else ""))
    if entry.allowed_callees:
        lines += ["", "Allowed callees: " + ", ".join(f"`{a}`" for a in entry.allowed_callees)]
    lines += ["", "## Audits", ""]
    if not entry.audits:
        lines.append("None attached.")
    for a in entry.audits:
        open_findings = [f for f in a.findings if f.status != "fixed"]
        lines.append(
            f"- {a.auditor.name} `{a.auditor.address}`, {a.issued_at}, {a.report_uri} "
            f"(sha256 `{a.report_sha256[:16]}…`), {len(a.findings)} finding(s), "
            f"{len(open_findings)} not fixed, {'signed' if a.signature else 'unsigned'}"
        )
    if notes:
        lines += ["", "## Notes for the reviewer", ""] + [f"- {n}" for n in notes]
    lines += [
        "",
        "## To approve",
        "",
        "Read the entry file beside this report, edit what must change (allowed functions, caps,",
        "callees), then each reviewer runs `defiagent allowlist approve ENTRY --key KEYSTORE`.",
        "Any later edit voids every approval.",
        "",
        "Checks: " + ", ".join(f"`{cid}`" for cid in REGISTRY),
        "",
    ]
    return "\n".join(lines)


def _round_trip(rt: Any) -> list[str]:
    """The honeypot probe: bought on a local fork, sold back, compared with the pools' math."""
    verdict = "PASS" if rt.passed else "FAIL"
    lines = [
        "",
        "## Round trip (honeypot probe)",
        "",
        f"**{verdict}** `round-trip-sellable`: {_md(rt.reason)}",
        "",
        "Bought on a throwaway local fork of the chain (nothing was sent), then sold back "
        "through the same router with swapExactTokensForTokens in the same block.",
        "",
    ]
    if rt.path:
        lines.append("- path " + " -> ".join(f"`{a}`" for a in rt.path))
    if rt.router:
        lines.append(f"- router `{rt.router}`, pools " + ", ".join(f"`{p}`" for p in rt.pools))
    if rt.block_number is not None:
        lines.append(f"- block {rt.block_number}")
    if rt.bought:
        sale = (
            f", sold back for {rt.sold_back} (expected {rt.expected_back} from the reserves)"
            if rt.sellable
            else ""
        )
        lines.append(f"- spent {rt.spent}, bought {rt.bought}{sale} (base units)")
    if rt.loss_bps_beyond_fees is not None:
        lines.append(
            f"- loss beyond the pools' fees: {rt.loss_bps_beyond_fees:g} bps "
            f"(limit {rt.limit_bps}); the fees alone: {rt.fees_bps:g} bps"
        )
    else:
        lines.append(f"- sellable: {'yes' if rt.sellable else 'no'} (limit {rt.limit_bps} bps)")
    return lines


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
