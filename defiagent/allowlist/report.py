"""The human review report written beside a proposed entry (markdown)."""

from __future__ import annotations

from defiagent.allowlist.models import AllowlistEntry
from defiagent.allowlist.signatures import entry_hash
from defiagent.vetting.checks import REGISTRY
from defiagent.vetting.vet import VetReport

_ICON = {"pass": "PASS", "fail": "FAIL", "warn": "WARN", "skip": "skip"}


def render_review(entry: AllowlistEntry, report: VetReport, notes: list[str]) -> str:
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
    lines += [
        f"- entry hash (what reviewers sign) `{entry_hash(entry)}`",
        "",
        f"## Verdict: {'all automated checks pass' if report.passed else 'CHECKS FAIL (see below)'}",
        "",
        "| check | result | reason |",
        "|---|---|---|",
    ]
    for o in report.outcomes:
        subject = f" ({o.subject})" if o.subject else ""
        lines.append(f"| {o.check} | {_ICON[o.status]} | {_md(o.reason)}{_md(subject)} |")
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


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
