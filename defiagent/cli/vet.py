"""`defiagent vet TARGET`: vet sources (a folder or a .sol file) or a deployed contract."""

from __future__ import annotations

import re
from pathlib import Path

import typer
from eth_utils import is_address
from rich.table import Table

from defiagent.cli.output import console, emit, plain
from defiagent.errors import ConfigError
from defiagent.types import parse_address

STATUS_STYLE = {"pass": "green", "fail": "bold red", "warn": "yellow", "skip": "dim"}

ALLOWLIST_OPT = typer.Option(
    None,
    "--allowlist",
    envvar="DEFIAGENT_ALLOWLIST_DIR",
    help="Allowlist root (policy.toml, reviewers.toml, entries). Default: ./contracts_allowlist.",
)


# solc's --evm-version names, oldest first.
EVM_VERSIONS = (
    "homestead",
    "tangerineWhistle",
    "spuriousDragon",
    "byzantium",
    "constantinople",
    "petersburg",
    "istanbul",
    "berlin",
    "london",
    "paris",
    "shanghai",
    "cancun",
    "prague",
    "osaka",
)


def _solc_version(value: str) -> str:
    """--solc-version: a version like 0.6.6, installed or published (installed on first use)."""
    from defiagent.vetting.compilers import FIRST_STANDARD_JSON, installed_versions
    from defiagent.vetting.compilers import registry_versions as published

    version = value.strip().removeprefix("v").split("+", 1)[0]
    if not re.fullmatch(r"\d+\.\d+\.\d+", version):
        raise ConfigError(f"--solc-version {value!r} is not a compiler version like 0.6.6")
    if version in installed_versions():
        return version
    if version not in published():
        raise ConfigError(f"--solc-version {version} is not a published solc release")
    if tuple(int(x) for x in version.split(".")) < (
        FIRST_STANDARD_JSON.major,
        FIRST_STANDARD_JSON.minor,
        FIRST_STANDARD_JSON.patch,
    ):
        raise ConfigError(
            f"--solc-version {version} predates standard JSON: 0.4.11 and later are supported"
        )
    return version


def _evm_version(value: str) -> str:
    if value not in EVM_VERSIONS:
        raise ConfigError(
            f"--evm-version {value!r} is not an EVM version solc knows (one of {', '.join(EVM_VERSIONS)})"
        )
    return value


def settings_from_options(
    solc_version: str | None,
    optimizer_runs: int | None,
    no_optimizer: bool,
    evm_version: str | None,
):
    """Compiler settings from the command line; None when none were given."""
    from defiagent.vetting.bundle import CompilerSettings

    if solc_version is None and optimizer_runs is None and not no_optimizer and evm_version is None:
        return None
    if optimizer_runs is not None and optimizer_runs < 0:
        raise ConfigError(f"--optimizer-runs {optimizer_runs} is negative")
    return CompilerSettings(
        version=_solc_version(solc_version) if solc_version is not None else None,
        optimizer_enabled=not no_optimizer,
        optimizer_runs=optimizer_runs if optimizer_runs is not None else 200,
        evm_version=_evm_version(evm_version) if evm_version is not None else None,
        explicit=True,
    )


def print_outcomes(title: str, outcomes, *, passed: bool, verdict: str | None = None) -> None:
    table = Table(title=title, show_lines=False, title_justify="left")
    table.add_column("check", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("reason", overflow="fold")
    for o in outcomes:
        # Reasons are text, never markup: "[id 0123456789ab]" is the id `triage` takes.
        subject = f" [dim]({plain(o.subject)})[/]" if o.subject else ""
        table.add_row(
            plain(o.check),
            f"[{STATUS_STYLE[o.status]}]{o.status.upper()}[/]",
            plain(o.reason) + subject,
        )
    console.print(table)
    if verdict is not None:
        from defiagent.vetting.verdict import VERDICT_TEXT

        style = {"accepted": "bold green", "refused": "bold red"}.get(verdict, "bold yellow")
        console.print(f"[{style}]{VERDICT_TEXT[verdict]}[/] {plain(title)}", highlight=False)
        return
    mark = "[bold green]PASS[/]" if passed else "[bold red]FAIL[/]"
    console.print(f"{mark} {plain(title)}", highlight=False)


def list_checks(as_json: bool) -> None:
    from defiagent.vetting.checks import REGISTRY
    from defiagent.vetting.detectors import CUSTOM_DETECTORS

    rows = [
        {
            "id": c.id,
            "kind": "check",
            "severity": c.severity,
            "applies_to": list(c.applies_to),
            "description": c.description,
        }
        for c in REGISTRY.values()
    ] + [
        {
            "id": d.ARGUMENT,
            "kind": "slither-detector",
            "severity": f"{d.IMPACT.name.lower()} impact",
            "applies_to": ["sources", "address"],
            "description": d.WIKI_DESCRIPTION,
        }
        for d in CUSTOM_DETECTORS
    ]

    def human() -> None:
        table = Table(title="vetting checks")
        for col in ("id", "kind", "severity", "description"):
            table.add_column(col, overflow="fold")
        for r in rows:
            table.add_row(r["id"], r["kind"], r["severity"], r["description"])
        console.print(table)

    emit({"ok": True, "checks": rows}, as_json=as_json, human=human)


def _target_address(target: str) -> str | None:
    """TARGET as a checksummed address, None for an existing path; anything else is refused."""
    if is_address(target):  # eth_utils' test: a wrong EIP-55 checksum still passes it
        return parse_address(target, "TARGET")
    if Path(target).exists():
        return None
    hint = "; ENS names are not resolved" if target.lower().endswith(".eth") else ""
    raise ConfigError(
        f"TARGET {target!r} is neither an Ethereum address (0x and 40 hex digits{hint}) "
        "nor an existing .sol file or source folder"
    )


def vet(
    target: str = typer.Argument(None, help="A source folder, a .sol file, or a contract address."),
    rpc_url: str = typer.Option(
        None, "--rpc-url", envvar="DEFIAGENT_RPC_URL", help="RPC for an address."
    ),
    sources: Path = typer.Option(
        None,
        "--sources",
        help="Sources of the deployed contract: a .sol file, or a folder (may hold metadata.json).",
    ),
    sourcify_url: str = typer.Option(
        None, "--sourcify-url", help="Fetch sources from this Sourcify server."
    ),
    audit: list[Path] = typer.Option(
        [], "--audit", help="An audit record (TOML/JSON) to judge too; repeatable."
    ),
    triage: list[Path] = typer.Option(
        [], "--triage", help="A file of signed triage records; repeatable."
    ),
    solc_version: str = typer.Option(None, "--solc-version", help="Compiler version, e.g. 0.6.6."),
    optimizer_runs: int = typer.Option(
        None, "--optimizer-runs", help="Optimizer runs the code was built with."
    ),
    no_optimizer: bool = typer.Option(
        False, "--no-optimizer", help="The code was built without the optimizer."
    ),
    evm_version: str = typer.Option(
        None, "--evm-version", help="EVM version the code was built for."
    ),
    allowlist: Path = ALLOWLIST_OPT,
    checks: bool = typer.Option(False, "--list-checks", help="List the vetting checks and exit."),
    batch: Path = typer.Option(
        None,
        "--batch",
        help="Vet every source file or folder listed in this file (one a line) on Dask.",
    ),
    scheduler: str = typer.Option(
        None,
        "--scheduler",
        help="With --batch: a Dask scheduler (tcp://host:port); default a LocalCluster.",
    ),
    workers: int = typer.Option(
        2, "--workers", help="With --batch and no --scheduler: LocalCluster worker processes."
    ),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output on stdout."),
) -> None:
    """Vet contract code: compile, Slither gate, and for an address proxies, codehash, sources, audits.

    Exit 0 when every check passes, 1 when one fails (each reason is printed).
    """
    if checks:
        list_checks(as_json)
        return
    if batch is not None:
        if target:
            raise ConfigError("give either a TARGET or --batch LIST, not both")
        vet_batch(batch, scheduler, workers, allowlist, triage, as_json)
        return
    if scheduler is not None:
        raise ConfigError("--scheduler is for --batch")
    if not target:
        raise ConfigError(
            "give a TARGET: a source folder, a .sol file, or an address with --rpc-url"
        )
    address = _target_address(target)
    from defiagent.allowlist.policy import load_policy
    from defiagent.allowlist.reviewers import load_reviewers
    from defiagent.allowlist.store import default_root, entry_path, require_root
    from defiagent.allowlist.tomlio import read_entry
    from defiagent.allowlist.workflow import load_triage_file
    from defiagent.vetting.audits import load_audit
    from defiagent.vetting.onchain import ChainReader
    from defiagent.vetting.sourcify import SourcifyClient
    from defiagent.vetting.vet import vet_address, vet_sources

    root = Path(allowlist) if allowlist else default_root()
    if allowlist is not None:
        require_root(root)  # a mistyped --allowlist would vet against the default policy
    policy = load_policy(root)
    try:
        reviewers = load_reviewers(root)
    except ConfigError:
        reviewers = None  # no reviewers file: triage records cannot be trusted, and say so
    triaged = [t for path in triage for t in load_triage_file(path)]
    settings = settings_from_options(solc_version, optimizer_runs, no_optimizer, evm_version)
    if address is not None:
        target = address
        if not rpc_url:
            raise ConfigError("vetting an address needs --rpc-url (or DEFIAGENT_RPC_URL)")
        reader = ChainReader(rpc_url)
        path = entry_path(root, reader.chain_id, target)
        entry = read_entry(path) if path.is_file() else None
        vetting = vet_address(
            reader,
            target,
            policy=policy,
            reviewers=reviewers,
            sources=sources,
            sourcify=SourcifyClient(sourcify_url) if sourcify_url else None,
            entry=entry,
            audits=[load_audit(a) for a in audit],
            triage=triaged,
            settings=settings,
            report_base=root,
        )
        title = f"vet {target} on chain {reader.chain_id}" + (
            f" (entry {path.name})" if entry else ""
        )
    else:
        if sources is not None:
            raise ConfigError("--sources is for an address; give the source folder as TARGET")
        vetting = vet_sources(
            Path(target), policy=policy, reviewers=reviewers, triage=triaged, settings=settings
        )
        title = f"vet {target}"
    report = vetting.report

    def human() -> None:
        if reviewers is None:
            console.print(
                f"[yellow]no reviewers file in {plain(root)}: triage records cannot be checked[/]"
            )
        if report.review_note:
            console.print(f"[yellow]{plain(report.review_note)}[/]", highlight=False)
        print_outcomes(title, report.outcomes, passed=report.passed, verdict=report.verdict)

    emit(
        {"ok": report.passed, "verdict": report.verdict, "report": report},
        as_json=as_json,
        human=human,
    )
    if not report.passed:
        raise typer.Exit(1)


def vet_batch(
    list_file: Path,
    scheduler: str | None,
    workers: int,
    allowlist: Path | None,
    triage: list[Path],
    as_json: bool,
) -> None:
    """`vet --batch LIST`: every listed source target on Dask, a summary table, exit 0/1/3."""
    from defiagent.allowlist.policy import load_policy
    from defiagent.allowlist.reviewers import load_reviewers
    from defiagent.allowlist.store import default_root, require_root
    from defiagent.allowlist.workflow import load_triage_file
    from defiagent.cli.output import err_console
    from defiagent.vetting.batch import read_targets, run_batch
    from defiagent.vetting.verdict import VERDICT_TEXT

    if scheduler is not None and not re.fullmatch(r"(tcp|tls)://[^\s/]+:\d+", scheduler):
        raise ConfigError(f"--scheduler {scheduler!r} is not a Dask address like tcp://host:8786")
    if workers < 1 or workers > 64:
        raise ConfigError(f"--workers {workers} must be between 1 and 64")
    targets = read_targets(list_file)
    root = Path(allowlist) if allowlist else default_root()
    if allowlist is not None:
        require_root(root)
    policy = load_policy(root)
    try:
        reviewers = load_reviewers(root)
    except ConfigError:
        reviewers = None
    triaged = [t for path in triage for t in load_triage_file(path)]
    done = 0

    def progress(item) -> None:
        nonlocal done
        done += 1
        err_console.print(
            f"[{done}/{len(targets)}] {VERDICT_TEXT.get(item.verdict, 'ERROR')} "
            f"{plain(item.target)} ({item.seconds:.1f}s)",
            highlight=False,
        )

    report = run_batch(
        targets,
        policy=policy,
        reviewers=reviewers,
        triage=triaged,
        scheduler=scheduler,
        workers=workers,
        on_result=progress,
    )

    def human() -> None:
        table = Table(title=f"vet --batch {list_file} on {report.scheduler}", title_justify="left")
        for col in ("target", "verdict", "findings", "solc", "seconds", "reason"):
            table.add_column(col, overflow="fold")
        for item in report.items:
            style = {"accepted": "green", "refused": "bold red"}.get(item.verdict, "yellow")
            table.add_row(
                plain(item.target),
                f"[{style}]{VERDICT_TEXT.get(item.verdict, 'ERROR')}[/]",
                str(item.findings),
                item.solc_version or "",
                f"{item.seconds:.1f}",
                plain(item.reason[:160]),
            )
        console.print(table)
        counts = ", ".join(f"{n} {k}" for k, n in report.counts().items() if n)
        rate = len(report.items) / report.seconds if report.seconds else 0.0
        console.print(
            f"{len(report.items)} targets in {report.seconds:.1f}s ({rate:.2f}/s) on "
            f"{report.workers} worker(s): {counts}",
            highlight=False,
        )

    emit(
        {
            "ok": report.exit_code == 0,
            "counts": report.counts(),
            "batch": report,
        },
        as_json=as_json,
        human=human,
    )
    if report.exit_code:
        raise typer.Exit(report.exit_code)
