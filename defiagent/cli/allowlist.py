"""`defiagent allowlist ...`: propose, triage, approve, verify, list, show, revoke entries."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from defiagent.cli.output import console, emit, plain
from defiagent.cli.vet import ALLOWLIST_OPT, print_outcomes, settings_from_options
from defiagent.errors import ConfigError

app = typer.Typer(
    help="The contract allowlist: propose, review, approve (M-of-N), verify, revoke.",
    no_args_is_help=True,
)

JSON_OPT = typer.Option(False, "--json", help="Machine-readable output on stdout.")
KEY_OPT = typer.Option(..., "--key", help="Your V3 keystore file (mode 0600).")
PASSWORD_ENV_OPT = typer.Option(
    None, "--password-env", help="Read the keystore password from this environment variable."
)


def _root(allowlist: Path | None, *, writes: bool = False) -> Path:
    """--allowlist (else $DEFIAGENT_ALLOWLIST_DIR, else ./contracts_allowlist), which must
    exist: a mistyped one is refused, never created."""
    from defiagent.allowlist.store import default_root, require_root

    return require_root(Path(allowlist) if allowlist else default_root(), writes=writes)


def _max_approve(value: str | None) -> int | None:
    """--max-approve: base units, decimal or 0x-hex, 0 to 2**256-1."""
    from defiagent.types import UINT256_MAX

    if value is None:
        return None
    try:
        amount = int(value.strip().replace("_", ""), 0)
    except ValueError:
        raise ConfigError(
            f"--max-approve {value!r} is not a whole number of base units (e.g. 1000000000000000000)"
        ) from None
    if not 0 <= amount <= UINT256_MAX:
        raise ConfigError(f"--max-approve {value} is outside 0 to 2**256-1 (a uint256)")
    return amount


def _signer(key: Path, password_env: str | None):
    """A keystore signer; the password comes from a prompt or a named env var, never argv."""
    from defiagent.signing.keystore import KeystoreSigner
    from defiagent.signing.passwords import password_from_env, prompt_secret

    password = (
        password_from_env(password_env) if password_env else prompt_secret("Keystore password")
    )
    return KeystoreSigner(key, password)


def _entry(root: Path, ref: str) -> Path:
    from defiagent.allowlist.store import resolve_entry

    return resolve_entry(root, ref)


@app.command("propose")
def propose(
    address: str = typer.Argument(..., help="The contract address."),
    rpc_url: str = typer.Option(
        ..., "--rpc-url", envvar="DEFIAGENT_RPC_URL", help="RPC of the chain."
    ),
    name: str = typer.Option(
        ..., "--name", help="A name reviewers recognise, e.g. 'Uniswap V2 Router02'."
    ),
    role: str = typer.Option(
        "other",
        "--role",
        help="router, spender, pool, factory, token, wrapped-native, lending-market, oracle, "
        "other. Only router and spender entries may be approved as spenders.",
    ),
    sources: Path = typer.Option(
        None, "--sources", help="Sources: a .sol file, or a folder (may hold a solc metadata.json)."
    ),
    sourcify_url: str = typer.Option(
        None, "--sourcify-url", help="Fetch sources from this Sourcify server."
    ),
    audit: list[Path] = typer.Option(
        [], "--audit", help="An audit record (TOML/JSON); repeatable."
    ),
    triage: list[Path] = typer.Option(
        [], "--triage", help="A file of signed triage records; repeatable."
    ),
    max_approve: str = typer.Option(
        None, "--max-approve", help="Token role: approve cap in base units."
    ),
    callee: list[str] = typer.Option(
        [], "--callee", help="An extra contract calls may touch; repeatable."
    ),
    solc_version: str = typer.Option(None, "--solc-version"),
    optimizer_runs: int = typer.Option(None, "--optimizer-runs"),
    no_optimizer: bool = typer.Option(False, "--no-optimizer"),
    evm_version: str = typer.Option(None, "--evm-version"),
    replace: bool = typer.Option(False, "--replace", help="Replace an entry that has approvals."),
    probe_pool: str | None = typer.Option(
        None,
        "--probe-pool",
        help="Token role: a Uniswap V2 pair holding the token. Buy it there and sell it back on "
        "a local fork of the chain (honeypot probe, check round-trip-sellable); exit 1 if it fails.",
    ),
    probe_router: str | None = typer.Option(
        None, "--probe-router", help="The Router02 the probe buys and sells through."
    ),
    probe_max_loss_bps: int = typer.Option(
        None,
        "--probe-max-loss-bps",
        min=0,
        max=10_000,
        help="Round-trip loss allowed beyond the pools' fees (default 100, as [guard.honeypot]).",
    ),
    allowlist: Path = ALLOWLIST_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Vet a deployed contract and write a proposed entry plus a review report beside it.

    With --probe-pool, a token is also bought and sold back on a local fork (exit 1 when it
    cannot be sold or loses more than the limit beyond the pools' fees).
    """
    from defiagent.allowlist.models import Role
    from defiagent.allowlist.workflow import load_triage_file, propose_entry
    from defiagent.types import parse_address
    from defiagent.vetting.sourcify import SourcifyClient

    # Every argument is checked before the RPC is asked anything.
    address = parse_address(address, "ADDRESS")
    callee = [parse_address(c, "--callee") for c in callee]
    probe_pool = parse_address(probe_pool, "--probe-pool") if probe_pool else None
    probe_router = parse_address(probe_router, "--probe-router") if probe_router else None
    cap = _max_approve(max_approve)
    settings = settings_from_options(solc_version, optimizer_runs, no_optimizer, evm_version)
    try:
        role_value = Role(role)
    except ValueError as exc:
        raise ConfigError(
            f"unknown role {role!r}: one of {', '.join(r.value for r in Role)}"
        ) from exc
    proposal = propose_entry(
        _root(allowlist, writes=True),
        address,
        rpc=rpc_url,
        name=name,
        role=role_value,
        sources=sources,
        sourcify=SourcifyClient(sourcify_url) if sourcify_url else None,
        audits=list(audit),
        triage=[t for p in triage for t in load_triage_file(p)],
        max_approve=cap,
        allowed_callees=callee,
        settings=settings,
        replace=replace,
        probe_pool=probe_pool,
        probe_router=probe_router,
        probe_max_loss_bps=probe_max_loss_bps,
    )
    slither = proposal.entry.slither
    waived = {t.slither_id for t in slither.triaged} if slither else set()
    findings = [f for f in (slither.failing if slither else []) if f not in waived]
    failed = not proposal.passed or proposal.probe_failed
    data = {
        "ok": not failed,
        "entry": str(proposal.entry_path),
        "review_report": str(proposal.report_path),
        "slither_result": str(proposal.slither_path) if proposal.slither_path else None,
        "checks_pass": proposal.passed,
        "report": proposal.report,
        "notes": proposal.notes,
        "round_trip": proposal.round_trip,
        "untriaged_findings": findings,  # the ids `allowlist triage ENTRY FINDING` takes
        "review_basis": proposal.entry.review_basis,
        "review_note": proposal.report.review_note,
        "refusal": proposal.sources_missing,
    }

    def human() -> None:
        print_outcomes(
            f"proposal {proposal.entry.name}", proposal.report.outcomes, passed=proposal.passed
        )
        console.print(
            f"entry:  {plain(proposal.entry_path)}\nreport: {plain(proposal.report_path)}",
            highlight=False,
        )
        if proposal.report.review_note:
            console.print(f"[yellow]{plain(proposal.report.review_note)}[/]", highlight=False)
        if proposal.sources_missing:
            console.print(
                f"[bold red]REFUSED[/] {plain(proposal.sources_missing)}", highlight=False
            )
        if proposal.probe_failed:
            reason = plain(proposal.round_trip.reason)  # a token's revert text is untrusted
            console.print(f"[bold red]FAIL[/] round-trip-sellable: {reason}", highlight=False)
        for finding in findings:
            console.print(
                f"[bold red]FAIL[/] Slither finding {finding[:12]}: fix it, or waive it with "
                f"`defiagent allowlist triage {proposal.entry.address} {finding[:12]} "
                "--reason TEXT --key KEYSTORE`",
                highlight=False,
            )
        if not proposal.passed:
            console.print(
                "[yellow]fix, attach or triage what fails before anyone can approve it[/]"
            )

    emit(data, as_json=as_json, human=human)
    if failed:  # the entry is written all the same, for the review to go on
        raise typer.Exit(1)


def _is_sources(target: str) -> bool:
    path = Path(target)
    return path.suffix == ".sol" or path.is_dir()  # an entry is a .toml file or an address


@app.command("triage")
def triage(
    target: str = typer.Argument(
        ...,
        help="An entry (file or address), or sources (a .sol file or a folder) to triage "
        "for `vet --triage`.",
    ),
    findings: list[str] = typer.Argument(
        ..., help="Slither finding ids (unique prefixes will do); one or more."
    ),
    reason: str = typer.Option(
        ..., "--reason", help="Why these findings are acceptable, in words (one reason for all)."
    ),
    per_source: bool = typer.Option(
        False,
        "--per-source",
        help="Bind each record to the source file its finding lies in (its sha256), so it "
        "applies to every contract built with that exact file. Always so for sources.",
    ),
    out: Path = typer.Option(
        None,
        "--out",
        help="Sources only: the triage file to add the records to (created if absent); "
        "give it to `vet --triage` and `allowlist propose --triage`.",
    ),
    key: Path = KEY_OPT,
    password_env: str = PASSWORD_ENV_OPT,
    allowlist: Path = ALLOWLIST_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Waive Slither findings with your signed, written reason (one password for them all).

    For an entry, the records go into the entry (voiding its approvals). For sources,
    they go into --out, each bound to the source file its finding lies in: triage a
    library's findings once and they apply to every contract that imports that file.
    """
    from defiagent.allowlist.workflow import (
        entry_findings,
        merge_triage_file,
        sign_source_triages,
        source_findings,
        triage_findings,
    )

    root = _root(allowlist)
    if len(reason.strip()) < 10:
        raise ConfigError("a triage needs a written reason (--reason, at least 10 characters)")
    if _is_sources(target):
        if out is None:
            raise ConfigError(
                "triaging sources needs --out FILE, the triage file `vet --triage` reads"
            )
        if out.exists() and not out.is_file():
            raise ConfigError(f"--out {out} is not a file")
        # Everything is checked before the one password prompt.
        picked = source_findings(Path(target), findings, root=root)
        signer = _signer(key, password_env)
        _require_reviewer(root, signer)
        records = sign_source_triages(picked, reason, signer)
        merge_triage_file(out, records)
        where = str(out)
    else:
        if out is not None:
            raise ConfigError("--out is for sources; an entry keeps its triage records itself")
        path = _entry(root, target)
        entry_findings(path, findings, per_source=per_source)
        records = triage_findings(
            path, findings, reason, _signer(key, password_env), root=root, per_source=per_source
        )
        where = str(path)

    def human() -> None:
        for r in records:
            console.print(
                f"triaged {plain(r.check)} {r.slither_id[:12]} ({plain(r.binding)}) "
                f"into {plain(where)}",
                highlight=False,
            )

    emit({"ok": True, "target": where, "triage": records}, as_json=as_json, human=human)


def _require_reviewer(root: Path, signer) -> None:
    from defiagent.allowlist.reviewers import load_reviewers
    from defiagent.allowlist.signatures import signer_address
    from defiagent.errors import Refused

    if load_reviewers(root).get(signer_address(signer)) is None:
        raise Refused(
            f"{signer_address(signer)} is not a listed reviewer: it cannot triage findings"
        )


@app.command("approve")
def approve(
    entry: str = typer.Argument(..., help="Entry file or address."),
    key: Path = KEY_OPT,
    password_env: str = PASSWORD_ENV_OPT,
    allowlist: Path = ALLOWLIST_OPT,
    state_dir: Path = typer.Option(
        None,
        "--state-dir",
        help="The agent's state dir, where the operator is enrolled "
        "(default: $DEFIAGENT_STATE_DIR, else .defiagent).",
    ),
    otp_stdin: bool = typer.Option(
        False, "--otp-stdin", help="Read the operator's code as one line of stdin."
    ),
    as_json: bool = JSON_OPT,
) -> None:
    """Add your reviewer signature (EIP-712 over the entry's canonical hash).

    The approval that makes the entry active needs the operator's code when one is enrolled.
    """
    from defiagent.cli.operator import resolve_state_dir
    from defiagent.operator.gates import approve_with_operator

    root = _root(allowlist)
    path = _entry(root, entry)
    result = approve_with_operator(
        path,
        _signer(key, password_env),
        root=root,
        state_dir=resolve_state_dir(None, state_dir),
        otp_stdin=otp_stdin,
    )
    data = {
        "ok": True,
        "entry": str(path),
        "reviewer": result.reviewer,
        "valid_approvals": result.valid,
        "threshold": result.threshold,
        "active": result.active,
        "dropped": result.dropped,
    }

    def human() -> None:
        for d in result.dropped:
            console.print(f"[yellow]dropped approval {plain(d)}[/]", highlight=False)
        state = "[green]active[/]" if result.active else "pending more approvals"
        console.print(
            f"approved by {result.reviewer}: {len(result.valid)}/{result.threshold}, {state}"
        )

    emit(data, as_json=as_json, human=human)


@app.command("verify")
def verify(
    rpc_url: str = typer.Option(
        None, "--rpc-url", envvar="DEFIAGENT_RPC_URL", help="Also check code on chain now."
    ),
    chain_id: int = typer.Option(
        None, "--chain-id", help="Only the entries of this chain (one RPC per chain)."
    ),
    allowlist: Path = ALLOWLIST_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Check every entry: schema, signatures, audits, triage; with --rpc-url, codehash and proxy now.

    Exit 1 on any problem or drift, and with --rpc-url on any entry of another chain than
    the RPC's (nothing of it could be checked on chain). Fit for CI.
    """
    from defiagent.allowlist.verify import verify_allowlist

    report = verify_allowlist(_root(allowlist), rpc_url, chain_id=chain_id)

    def human() -> None:
        for p in report.problems:
            console.print(f"[bold red]FAIL[/] {plain(p)}", highlight=False)
        for e in report.entries:
            title = f"{e.name or '?'} {e.address or ''} ({Path(e.path).name})"
            print_outcomes(title, e.outcomes, passed=e.passed)
        where = (
            f" against chain {report.rpc_chain_id} at block {report.block}"
            if rpc_url
            else " (offline)"
        )
        verdict = (
            "[bold green]allowlist verified[/]" if report.passed else "[bold red]allowlist FAILS[/]"
        )
        console.print(f"{verdict}{where}: {len(report.entries)} entries")

    emit({"ok": report.passed, "report": report}, as_json=as_json, human=human)
    if not report.passed:
        raise typer.Exit(1)


def _status(path: Path, root: Path, reviewers, policy) -> tuple[str, list]:
    from defiagent.allowlist.store import structure_problems
    from defiagent.allowlist.tomlio import read_entry
    from defiagent.allowlist.verify import offline_outcomes
    from defiagent.errors import DefiagentError

    try:
        entry = read_entry(path)
    except DefiagentError as exc:
        return "invalid", [str(exc)]
    if entry.revoked:
        return "revoked", [entry.revoked_reason or ""]
    today = datetime.now(UTC).date()
    outcomes = offline_outcomes(entry, policy=policy, reviewers=reviewers, today=today, path=path)
    fails = [o for o in outcomes if o.status == "fail"]
    fails_problems = structure_problems(path, entry)
    if not fails and not fails_problems:
        return "active", []
    # Only short of approvals: pending. A signature that does not hold (an edit after
    # signing, a forgery) makes it invalid, so tampering never passes for "pending".
    short = [o for o in fails if o.check == "approvals" and "required" in o.reason]
    if len(short) == len(fails) and not fails_problems:
        return "pending", [o.reason for o in fails]
    return "invalid", fails_problems + [o.reason for o in fails]


@app.command("list")
def list_entries(
    chain_id: int = typer.Option(None, "--chain-id", help="Only this chain."),
    allowlist: Path = ALLOWLIST_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Every entry with its state: active, pending (needs approvals), invalid, revoked."""
    from defiagent.allowlist.policy import load_policy
    from defiagent.allowlist.reviewers import load_reviewers
    from defiagent.allowlist.store import iter_entry_paths
    from defiagent.allowlist.tomlio import read_toml
    from defiagent.errors import DefiagentError

    root = _root(allowlist)
    policy = load_policy(root)
    try:
        reviewers = load_reviewers(root)
    except ConfigError:
        reviewers = None
    rows: list[dict[str, Any]] = []
    for path in iter_entry_paths(root, chain_id):
        status, why = _status(path, root, reviewers, policy)
        try:
            raw = read_toml(path)
        except DefiagentError:
            raw = {}
        rows.append(
            {
                "path": str(path),
                "chain_id": raw.get("chain_id"),
                "address": raw.get("address"),
                "name": raw.get("name"),
                "role": raw.get("role"),
                "status": status,
                "reasons": why,
            }
        )

    def human() -> None:
        table = Table(title=f"allowlist {plain(root)}")
        for col in ("chain", "address", "name", "role", "status", "why"):
            table.add_column(col, overflow="fold")
        style = {"active": "green", "pending": "yellow", "invalid": "bold red", "revoked": "dim"}
        for r in rows:
            table.add_row(
                plain(r["chain_id"]),
                plain(r["address"]),
                plain(r["name"]),
                plain(r["role"]),
                f"[{style[r['status']]}]{r['status']}[/]",
                plain("; ".join(r["reasons"])[:200]),
            )
        console.print(table)

    emit({"ok": True, "entries": rows}, as_json=as_json, human=human)


@app.command("show")
def show(
    entry: str = typer.Argument(..., help="Entry file or address."),
    allowlist: Path = ALLOWLIST_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """One entry: its content, canonical hash, and the state of each check."""
    from defiagent.allowlist.policy import load_policy
    from defiagent.allowlist.reviewers import load_reviewers
    from defiagent.allowlist.signatures import entry_hash
    from defiagent.allowlist.tomlio import dumps, read_entry
    from defiagent.allowlist.verify import offline_outcomes

    root = _root(allowlist)
    path = _entry(root, entry)
    model = read_entry(path)
    try:
        reviewers = load_reviewers(root)
    except ConfigError:
        reviewers = None
    outcomes = offline_outcomes(
        model,
        policy=load_policy(root),
        reviewers=reviewers,
        today=datetime.now(UTC).date(),
        path=path,
    )
    passed = not any(o.status == "fail" for o in outcomes)

    def human() -> None:
        console.print(dumps(model), markup=False, highlight=False)
        console.print(f"entry hash: {entry_hash(model)}")
        if model.review_line():
            console.print(f"[yellow]{plain(model.review_line())}[/]", highlight=False)
        print_outcomes(f"{model.name} ({path.name})", outcomes, passed=passed and not model.revoked)

    emit(
        {
            "ok": True,
            "path": str(path),
            "entry_hash": entry_hash(model),
            "entry": model,
            "review_basis": model.review_basis,
            "review_note": model.review_line(),
            "active": passed and not model.revoked,
            "outcomes": outcomes,
        },
        as_json=as_json,
        human=human,
    )


@app.command("revoke")
def revoke(
    entry: str = typer.Argument(..., help="Entry file or address."),
    reason: str = typer.Option(..., "--reason", help="Why it is revoked (kept in the entry)."),
    allowlist: Path = ALLOWLIST_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Revoke an entry: never active again (needs no signature: it only narrows)."""
    from defiagent.allowlist.workflow import revoke_entry

    path = _entry(_root(allowlist), entry)
    updated = revoke_entry(path, reason)
    emit(
        {"ok": True, "entry": str(path), "revoked": True, "reason": updated.revoked_reason},
        as_json=as_json,
        human=lambda: console.print(
            plain(f"revoked {updated.name} ({path.name}): {updated.revoked_reason}"),
            highlight=False,
        ),
    )


@app.command("attach-audit")
def attach_audit(
    entry: str = typer.Argument(..., help="Entry file or address."),
    audit: Path = typer.Argument(..., help="Audit record (TOML/JSON)."),
    allowlist: Path = ALLOWLIST_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Add an audit record to an entry (voids its approvals)."""
    from defiagent.allowlist.workflow import attach_audit as attach

    path = _entry(_root(allowlist), entry)
    updated = attach(path, audit)
    emit(
        {"ok": True, "entry": str(path), "audits": len(updated.audits)},
        as_json=as_json,
        human=lambda: console.print(
            plain(f"{path.name}: {len(updated.audits)} audit record(s)"), highlight=False
        ),
    )


@app.command("sign-audit")
def sign_audit(
    audit: Path = typer.Argument(..., help="Audit record (TOML) to sign in place."),
    key: Path = KEY_OPT,
    password_env: str = PASSWORD_ENV_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """For auditors: add your EIP-712 (ERC-7512) signature to an audit record file."""
    from defiagent.allowlist.tomlio import write_model
    from defiagent.vetting.audits import load_audit
    from defiagent.vetting.audits import sign_audit as sign

    signed = sign(load_audit(audit), _signer(key, password_env))
    if audit.suffix == ".json":
        audit.write_text(signed.model_dump_json(indent=2, exclude_none=True))
    else:
        write_model(audit, signed)
    emit(
        {"ok": True, "audit": str(audit), "auditor": signed.auditor.address},
        as_json=as_json,
        human=lambda: console.print(
            plain(f"signed {audit} as {signed.auditor.address}"), highlight=False
        ),
    )


audit_app = typer.Typer(
    help="Audit records (ERC-7512 style): write one for an auditor to sign.",
    no_args_is_help=True,
)
app.add_typer(audit_app, name="audit")


def _audit_finding(value: str):
    """--finding ID:SEVERITY:STATUS:TITLE."""
    from defiagent.allowlist.models import AuditFinding, Severity

    parts = value.split(":", 3)
    if len(parts) != 4 or not all(p.strip() for p in parts):
        raise ConfigError(
            f"--finding {value!r} is not ID:SEVERITY:STATUS:TITLE "
            "(e.g. 'H-01:high:fixed:Reentrancy in withdraw')"
        )
    finding_id, severity, status, title = (p.strip() for p in parts)
    if severity not in {s.value for s in Severity}:
        raise ConfigError(
            f"--finding {finding_id}: severity {severity!r} is not one of "
            f"{', '.join(s.value for s in Severity)}"
        )
    if status not in ("open", "acknowledged", "fixed"):
        raise ConfigError(
            f"--finding {finding_id}: status {status!r} is not open, acknowledged or fixed"
        )
    return AuditFinding(id=finding_id, severity=Severity(severity), title=title, status=status)


def _report_sha256(report: Path | None, report_sha256: str | None) -> str:
    import hashlib
    import re

    if report is not None and report_sha256 is not None:
        raise ConfigError("give --report FILE or --report-sha256 HEX, not both")
    if report is not None:
        if not report.is_file():
            raise ConfigError(f"--report {report} is not a file")
        return hashlib.sha256(report.read_bytes()).hexdigest()
    if report_sha256 is None:
        raise ConfigError("give --report FILE (hashed here) or --report-sha256 HEX")
    digest = report_sha256.strip().lower().removeprefix("0x")
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise ConfigError(f"--report-sha256 {report_sha256!r} is not 64 hex digits")
    return digest


@audit_app.command("new")
def audit_new(
    out: Path = typer.Argument(..., help="The audit record file to write (.toml)."),
    auditor_name: str = typer.Option(..., "--auditor-name", help="The audit firm's name."),
    auditor_address: str = typer.Option(
        ..., "--auditor-address", help="The key the auditor signs with (trusted in policy.toml)."
    ),
    auditor_uri: str = typer.Option(None, "--auditor-uri", help="The auditor's web page."),
    report_uri: str = typer.Option(
        ..., "--report-uri", help="Where the report is: https://..., file://..., or a path."
    ),
    report: Path = typer.Option(None, "--report", help="The report file, to hash here."),
    report_sha256: str = typer.Option(
        None, "--report-sha256", help="The report's sha256, when the file is not at hand."
    ),
    codehash: list[str] = typer.Option(
        ..., "--codehash", help="Runtime codehash the audit covers (0x + 64 hex); repeatable."
    ),
    chain_id: int = typer.Option(
        None, "--chain-id", min=1, help="Only this chain's deployment (with --address)."
    ),
    address: str = typer.Option(None, "--address", help="Only this deployment (with --chain-id)."),
    issued_at: str = typer.Option(
        None, "--issued-at", help="Date of the report, YYYY-MM-DD (default: today, UTC)."
    ),
    finding: list[str] = typer.Option(
        [], "--finding", help="A finding of the report, ID:SEVERITY:STATUS:TITLE; repeatable."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite OUT if it exists."),
    as_json: bool = JSON_OPT,
) -> None:
    """Write an unsigned audit record; the auditor then signs it with `allowlist sign-audit`.

    The record binds the report (URI and sha256) to the runtime codehashes it covers.
    """
    from datetime import date

    from pydantic import ValidationError

    from defiagent.allowlist.models import AuditedContract, AuditorInfo, AuditRecord
    from defiagent.allowlist.tomlio import validation_message, write_model
    from defiagent.types import parse_address

    if out.suffix != ".toml":
        raise ConfigError(f"{out} should be a .toml file (the format `--audit` reads)")
    if out.exists() and not force:
        raise ConfigError(f"{out} already exists: give --force to overwrite it")
    if (chain_id is None) != (address is None):
        raise ConfigError("--chain-id and --address go together (a deployment), or neither")
    try:
        day = date.fromisoformat(issued_at) if issued_at else datetime.now(UTC).date()
    except ValueError:
        raise ConfigError(f"--issued-at {issued_at!r} is not a date like 2026-11-30") from None
    digest = _report_sha256(report, report_sha256)
    where = parse_address(address, "--address") if address else None
    try:
        record = AuditRecord(
            auditor=AuditorInfo(
                name=auditor_name,
                uri=auditor_uri,
                address=parse_address(auditor_address, "--auditor-address"),
            ),
            issued_at=day,
            report_uri=report_uri,
            report_sha256=digest,
            contracts=[
                AuditedContract(chain_id=chain_id, address=where, runtime_codehash=h)
                for h in codehash
            ],
            findings=[_audit_finding(f) for f in finding],
        )
    except ValidationError as exc:
        raise ConfigError(f"the audit record is not valid: {validation_message(exc)}") from exc
    out.parent.mkdir(parents=True, exist_ok=True)
    write_model(
        out,
        record,
        header="# Audit record (ERC-7512 style). Sign: defiagent allowlist sign-audit\n",
    )
    emit(
        {"ok": True, "audit": str(out), "record": record},
        as_json=as_json,
        human=lambda: console.print(
            plain(
                f"wrote {out} ({len(record.contracts)} codehash(es), "
                f"{len(record.findings)} finding(s)); the auditor signs it with "
                f"`defiagent allowlist sign-audit {out} --key KEYSTORE`"
            ),
            highlight=False,
        ),
    )
