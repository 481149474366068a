"""`defiagent safe deploy | sync-guard | status`: the Safe the agent trades from, and its guard.

deploy      a Safe 1.4.1 owned by the operator's keys (M of N) and its AllowlistGuard module
            for the agent's key; writes the first sync-guard proposal (enable + rules).
sync-guard  the guard's on-chain rules against the signed allowlist: the diff, as a Safe
            transaction the owners approve one by one (--approve --key) and anyone sends
            once M have signed (--execute --key).
status      exit 0 when the Safe and its guard hold exactly what the allowlist says, else 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from web3 import Web3

from defiagent.cli.output import console, emit
from defiagent.errors import ConfigError, Refused
from defiagent.secrets.agent import rpc_url_of

app = typer.Typer(
    help="The Safe the agent trades from, and its on-chain guard.", no_args_is_help=True
)

CONFIG = typer.Option(
    ..., "--config", "-c", help="agent.toml (rpc_url, chain_id, allowlist_dir, [safe])."
)
JSON = typer.Option(False, "--json", help="Machine-readable output on stdout.")
PASSWORD_ENV = typer.Option(
    None, "--password-env", help="Read the keystore password from this environment variable."
)
PROPOSAL = typer.Option(
    None, "--proposal", help="The proposal file (default: <state_dir>/safe/sync-guard.json)."
)


def _keystore(key: Path, password_env: str | None) -> Any:
    from defiagent.signing.keystore import KeystoreSigner
    from defiagent.signing.passwords import password_from_env, prompt_secret

    password = (
        password_from_env(password_env) if password_env else prompt_secret("Keystore password")
    )
    return KeystoreSigner(key, password)


def _setup(config: Path) -> tuple[Any, Web3, Any]:
    from defiagent.agent.allowlist_source import load_allowlist
    from defiagent.config import load_config

    cfg = load_config(config)
    rpc_url = rpc_url_of(cfg)  # a secret reference resolved
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 10}))
    try:
        chain_id = w3.eth.chain_id
    except Exception as exc:
        from defiagent.chain.forwarder import redact_url
        from defiagent.errors import InfraError

        # Only scheme and host: the URL may carry an API key (and so may requests' text).
        raise InfraError(
            f"the RPC {redact_url(rpc_url)} did not answer ({type(exc).__name__})"
        ) from exc
    if chain_id != cfg.chain_id:
        raise ConfigError(
            f"config field chain_id is {cfg.chain_id} but the RPC is on chain {chain_id}"
        )
    return cfg, w3, load_allowlist(cfg.allowlist_dir, cfg.chain_id)


def _ref(cfg: Any) -> Any:
    from defiagent.safe.chain import SafeRef

    if cfg.safe is None:
        raise ConfigError(
            "the config has no [safe] section (address, guard): run `defiagent safe deploy`"
        )
    return SafeRef(address=cfg.safe.address, guard=cfg.safe.guard, multi_send=cfg.safe.multi_send)


def _proposal_path(cfg: Any, proposal: Path | None) -> Path:
    return proposal or Path(cfg.state_dir) / "safe" / "sync-guard.json"


@app.command("deploy")
def deploy(
    config: Path = CONFIG,
    key: Path = typer.Option(..., "--key", help="Keystore that pays for the deployment."),
    agent: str = typer.Option(
        ..., "--agent", help="The agent's signing address (the guard's only caller)."
    ),
    owner: list[str] = typer.Option(
        ..., "--owner", help="An owner of the Safe (repeat; the operator's keys)."
    ),
    threshold: int = typer.Option(
        ..., "--threshold", help="Owner signatures every Safe transaction needs (M)."
    ),
    dev_infra: bool = typer.Option(
        False, "--dev-infra", help="Deploy Safe 1.4.1 itself first (a local chain without it)."
    ),
    proposal: Path | None = PROPOSAL,
    password_env: str | None = PASSWORD_ENV,
    as_json: bool = JSON,
) -> None:
    """Deploy the Safe and its guard; print the safe section for agent.toml and write the first proposal."""
    from defiagent.safe import sync
    from defiagent.safe.deploy import canonical_infra, check_roles, deploy_infra, deploy_safe
    from defiagent.safe.runtime import wanted_config
    from defiagent.types import parse_address

    owners, agent_key = check_roles(
        [parse_address(o, "--owner") for o in owner], threshold, parse_address(agent, "--agent")
    )
    cfg, w3, allowlist = _setup(config)
    payer = _keystore(key, password_env)
    infra = canonical_infra(w3)
    if infra is None:
        if not dev_infra:
            raise Refused(
                "Safe 1.4.1 is not at its canonical addresses on this chain; on a local chain "
                "pass --dev-infra to deploy it from the npm artifacts"
            )
        infra = deploy_infra(w3, payer)
    dep = deploy_safe(
        w3,
        payer,
        owners=owners,
        threshold=threshold,
        agent=agent_key,
        infra=infra,
    )
    path = _proposal_path(cfg, proposal)
    sync.propose(w3, dep.ref, wanted_config(allowlist, infra.multi_send), path)
    section = (
        f'[safe]\naddress = "{dep.safe}"\nguard = "{dep.guard}"\nmulti_send = "{infra.multi_send}"'
    )

    def human() -> None:
        console.print(
            f"Safe {dep.safe} ({threshold} of {len(dep.owners)} owners), guard {dep.guard}"
        )
        console.print("add to agent.toml:\n" + section)
        console.print(
            f"then each owner: defiagent safe sync-guard -c {config} --approve --key OWNER.json "
            f"--proposal {path}\nand: defiagent safe sync-guard -c {config} --execute --key PAYER.json"
        )

    emit(
        {"ok": True, **dep.model_dump(mode="json"), "proposal": str(path)},
        as_json=as_json,
        human=human,
    )


@app.command("sync-guard")
def sync_guard(
    config: Path = CONFIG,
    approve: bool = typer.Option(
        False, "--approve", help="Sign the proposal as a Safe owner (--key)."
    ),
    execute: bool = typer.Option(
        False, "--execute", help="Send it once M owners signed (--key pays)."
    ),
    key: Path | None = typer.Option(
        None, "--key", help="Keystore: an owner (--approve) or the payer (--execute)."
    ),
    proposal: Path | None = PROPOSAL,
    password_env: str | None = PASSWORD_ENV,
    as_json: bool = JSON,
) -> None:
    """Show the guard's diff against the allowlist, and propose, approve or execute the sync."""
    from defiagent.safe import sync
    from defiagent.safe.runtime import wanted_config

    if approve and execute:
        raise ConfigError("--approve and --execute are separate steps: give one")
    if (approve or execute) and key is None:
        raise ConfigError("--approve and --execute need --key")
    cfg, w3, allowlist = _setup(config)
    ref = _ref(cfg)
    want = wanted_config(allowlist, ref.multi_send)
    path = _proposal_path(cfg, proposal)
    result: dict[str, Any] = {"ok": True, "proposal": str(path), "config_hash": want.config_hash}
    if execute:
        assert key is not None
        result["tx_hash"] = sync.execute(w3, ref, path, _keystore(key, password_env), want)
        result["in_sync"] = True
    elif approve:
        assert key is not None
        signed, valid, threshold = sync.approve(w3, ref, path, _keystore(key, password_env), want)
        result.update(
            diff=signed.diff, safe_tx_hash=signed.safe_tx_hash, valid=valid, threshold=threshold
        )
    else:
        made = sync.propose(w3, ref, want, path)
        result["in_sync"] = made is None
        if made is not None:
            result.update(
                diff=made.diff, safe_tx_hash=made.safe_tx_hash, signatures=len(made.signatures)
            )

    def human() -> None:
        if "tx_hash" in result:
            console.print(f"guard synced to {want.config_hash} in {result['tx_hash']}")
            return
        if result.get("in_sync"):
            console.print("the guard already holds the allowlist's rules: nothing to sync")
            return
        for line in result.get("diff", []):
            console.print(line, markup=False)
        if "valid" in result:
            console.print(
                f"{len(result['valid'])} of {result['threshold']} owner signature(s) on {result['safe_tx_hash']}"
            )
        else:
            console.print(
                f"proposal {result['safe_tx_hash']} written to {path}: each owner runs --approve"
            )

    emit(result, as_json=as_json, human=human)


@app.command("status")
def status(
    config: Path = CONFIG,
    agent: str | None = typer.Option(
        None, "--agent", help="Also check the guard's agent is this address."
    ),
    as_json: bool = JSON,
) -> None:
    """Exit 0 when the Safe's guard holds exactly the allowlist's rules, 1 when not."""
    from defiagent.safe.runtime import wanted_config
    from defiagent.safe.status import safe_status
    from defiagent.types import parse_address

    expected_agent = parse_address(agent, "--agent") if agent is not None else None
    cfg, w3, allowlist = _setup(config)
    ref = _ref(cfg)
    report, _ = safe_status(w3, ref, wanted_config(allowlist, ref.multi_send), agent=expected_agent)

    def human() -> None:
        console.print(
            f"Safe {report.safe}: owners {', '.join(report.owners)} (threshold {report.threshold})"
        )
        console.print(
            f"guard {report.guard}: agent {report.agent}, module enabled: {report.module_enabled}"
        )
        for line in report.diff:
            console.print("  " + line, markup=False)
        for p in report.problems:
            console.print(f"[red]OUT OF SYNC[/red] {p}")
        for line in report.left_out:
            console.print(f"not enforceable on chain, so refused to the Safe: {line}", markup=False)
        if report.in_sync:
            console.print(f"[green]in sync[/green] with the allowlist ({report.want_config_hash})")

    emit({"ok": report.in_sync, **report.model_dump()}, as_json=as_json, human=human)
    if not report.in_sync:
        raise typer.Exit(1)
