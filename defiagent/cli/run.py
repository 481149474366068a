"""`defiagent run` (a real chain, the configured signer) and `defiagent dry-run` (a fork).

A dry run is the same pipeline sent to a local anvil fork of the given RPC. The fork gets
a private chain id, and the allowlist (verified first for the real chain) is relabelled
to it, so nothing signed in a dry run is a valid transaction on the real chain. Between
ticks the fork's clock moves forward by tick_seconds instead of the command sleeping.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import typer
from rich.markup import escape

from defiagent import secrets
from defiagent.agent.allowlist_source import load_allowlist
from defiagent.agent.reports import TickReport
from defiagent.agent.runtime import AgentRuntime
from defiagent.allowlist.models import ActiveAllowlist
from defiagent.chain.anvil import Anvil
from defiagent.chain.forwarder import looks_like_credential, redact_url
from defiagent.chain.rpc import JsonRpcClient
from defiagent.cli.agent_output import print_tick, summary_table, totals
from defiagent.cli.output import console, emit, err_console
from defiagent.config import AgentConfig, load_config
from defiagent.errors import ConfigError, Refused
from defiagent.monitoring.kill_switch import KillSwitch
from defiagent.net.tls import check_secure_url, set_ca_bundle
from defiagent.secrets.reference import looks_like_reference
from defiagent.strategy.secrets import resolve_secret

CONFIG = typer.Option(..., "--config", "-c", help="agent.toml")
JSON = typer.Option(False, "--json", help="Machine-readable output on stdout (at the end).")
VERBOSE = typer.Option(
    False, "--verbose", "-v", help="Also print each strategy and rule in force at start (stderr)."
)


def _loop(
    runtime: AgentRuntime,
    *,
    ticks: int | None,
    as_json: bool,
    between,
    verbose: bool = False,
) -> list[TickReport]:
    reports: list[TickReport] = []
    for warning in getattr(runtime, "warnings", []):  # e.g. a strategy without its sandbox
        err_console.print(f"[bold yellow]WARNING:[/] {escape(warning)}", highlight=False)
    if verbose and not as_json:  # the rules in force, one a line (also in the audit log)
        for line in runtime.explanations:
            err_console.print(f"[dim]{escape(line)}[/]", highlight=False)
    assert runtime.agent is not None  # made on entering the runtime
    runtime.agent.warm_up()
    try:
        while ticks is None or len(reports) < ticks:
            between(len(reports))
            report = runtime.agent.tick()
            reports.append(report)
            if not as_json:
                print_tick(console, report)
    except KeyboardInterrupt:
        if not as_json:
            err_console.print("interrupted: stopping after the current tick")
    return reports


def _result(runtime: AgentRuntime, reports: list[TickReport], mode: str) -> dict:
    return {
        "ok": True,
        "mode": mode,
        "agent": runtime.signer.address,
        "audit_log": str(runtime.audit_path),
        "totals": totals(reports),
        "ticks": [r.model_dump() for r in reports],
    }


def _render(result: dict, reports: list[TickReport], as_json: bool, title: str) -> None:
    def human() -> None:
        console.print(summary_table(reports, title=title))
        console.print(f"audit log: {escape(result['audit_log'])}", highlight=False)

    emit(result, as_json=as_json, human=human)


def run(
    config: Path = CONFIG,
    ticks: int | None = typer.Option(None, "--ticks", min=1, help="Stop after N ticks."),
    as_json: bool = JSON,
    verbose: bool = VERBOSE,
) -> None:
    """Run the agent against the configured RPC, signing with the configured signer."""
    cfg = load_config(config)
    with AgentRuntime(cfg, mode="run") as runtime:
        reports = _loop(
            runtime,
            ticks=ticks,
            as_json=as_json,
            between=lambda n: time.sleep(cfg.tick_seconds),
            verbose=verbose,
        )
        result = _result(runtime, reports, "run")
    _render(result, reports, as_json, "run")


def dry_run_chain_id(real: int) -> int:
    return 31_337 if real != 31_337 else 31_338


def relabel(allowlist: ActiveAllowlist, chain_id: int) -> ActiveAllowlist:
    return ActiveAllowlist(
        chain_id=chain_id,
        entries={
            a: e.model_copy(update={"chain_id": chain_id}) for a, e in allowlist.entries.items()
        },
    )


def dry_run_config(cfg: AgentConfig, fork_url: str, chain_id: int, state_dir: Path) -> AgentConfig:
    return cfg.model_copy(
        update={
            "rpc_url": fork_url,
            "chain_id": chain_id,
            "state_dir": state_dir,
            "simulation": cfg.simulation.model_copy(update={"fork_url": fork_url}),
        }
    )


def resolve_fork_url(value: str) -> str:
    """The URL behind --fork-url: a secret reference (`env:NAME`, `keyring:SERVICE/NAME`,
    `vault:mount/path#field`, `aws-sm:secret-id#field`) resolved, or the plain URL, with a
    warning on stderr when a plain URL looks like it carries a key. https, or http on
    loopback only (docs/secrets.md)."""
    if looks_like_reference(value):
        url = resolve_secret(value, what=f"--fork-url {value}").strip()
        where = f"--fork-url {value}"
    else:
        url, where = value, "--fork-url"
        if _is_http_url(url) and looks_like_credential(url):
            err_console.print(
                f"[bold yellow]WARNING:[/] --fork-url {escape(redact_url(url))} carries what "
                "looks like an API key, visible to every local user in `ps`; pass it as "
                "--fork-url env:NAME instead",
                highlight=False,
                soft_wrap=True,
            )
    if not _is_http_url(url):
        raise ConfigError(
            f"{where}: {redact_url(url)} is not an http(s) URL",
            remedy="give an http(s) RPC URL, or a secret reference holding one",
        )
    return check_secure_url(url, what=f"{where} {redact_url(url)}")


def _is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (a bad port raises here)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def dry_run(
    fork_url: str = typer.Option(
        ...,
        "--fork-url",
        help="The RPC to fork: a secret reference holding its URL (env:NAME, "
        "keyring:SERVICE/NAME, vault:MOUNT/PATH#FIELD, aws-sm:ID#FIELD; keeps an API key out "
        "of argv), or a plain URL for a keyless endpoint.",
    ),
    config: Path = CONFIG,
    ticks: int = typer.Option(3, "--ticks", min=1, help="How many ticks to run."),
    as_json: bool = JSON,
    verbose: bool = VERBOSE,
) -> None:
    """The full pipeline against a local fork of FORK_URL: prints what would have happened."""
    cfg = load_config(config)
    set_ca_bundle(cfg.tls.ca_bundle)
    secrets.configure(cfg.secrets)  # --fork-url may be a vault: or aws-sm: reference
    fork_url = resolve_fork_url(fork_url)
    status = KillSwitch(cfg.state_dir).status()
    if status.on:
        raise Refused(f"the kill switch is on ({status.reason or 'no reason'}); nothing is signed")
    allowlist = load_allowlist(cfg.allowlist_dir, cfg.chain_id)  # verified for the real chain
    upstream = JsonRpcClient(fork_url, timeout=cfg.simulation.rpc_timeout_seconds)
    try:
        real_chain = upstream.call_int("eth_chainId")
    finally:
        upstream.close()
    if real_chain != cfg.chain_id:
        raise Refused(
            f"{redact_url(fork_url)} is chain {real_chain}, the config says chain {cfg.chain_id}"
        )
    private = dry_run_chain_id(real_chain)
    workdir = Path(tempfile.mkdtemp(prefix="defiagent-dry-run-"))
    with Anvil(fork_url=fork_url, chain_id=private, log_dir=workdir / "anvil") as fork:
        fork_rpc = JsonRpcClient(fork.url)

        def advance(n: int) -> None:
            # The fork does not follow the real chain: its clock moves one tick instead.
            fork_rpc.call("evm_increaseTime", max(1, int(cfg.tick_seconds)))
            fork_rpc.call("evm_mine")

        dry_cfg = dry_run_config(cfg, fork.url, private, workdir / "state")
        with AgentRuntime(
            dry_cfg, allowlist=relabel(allowlist, private), mode="dry-run"
        ) as runtime:
            reports = _loop(runtime, ticks=ticks, as_json=as_json, between=advance, verbose=verbose)
            result = _result(runtime, reports, "dry-run") | {
                "fork": {"upstream_chain_id": real_chain, "private_chain_id": private},
            }
        fork_rpc.close()
    _render(result, reports, as_json, f"dry run on a fork of chain {real_chain}")
