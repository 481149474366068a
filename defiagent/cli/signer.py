"""`defiagent signer`: which account the configured signer signs for, and whether it works."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from defiagent.cli.output import console, emit, plain
from defiagent.errors import ConfigError, Refused
from defiagent.signing.config import build_signer, load_signer_config

if TYPE_CHECKING:
    from defiagent.signing.remote.settings import SignerServiceConfig

app = typer.Typer(
    help="The configured signer (Ledger, AWS KMS, keystore or the signer process).",
    no_args_is_help=True,
)

CONFIG = typer.Option(..., "--config", "-c", help="agent.toml; only its signer table is read.")
JSON = typer.Option(False, "--json", help="Machine-readable output on stdout.")


def _close(signer: object) -> None:
    close = getattr(signer, "close", None)
    if callable(close):
        close()


@app.command("address")
def address(
    config: Path = CONFIG,
    confirm: bool = typer.Option(
        False, "--confirm", help="Ledger only: show the address on the device and wait for OK."
    ),
    as_json: bool = JSON,
) -> None:
    """Print the signer's address (with a Ledger, optionally confirmed on the device)."""
    cfg = load_signer_config(config)
    signer = build_signer(cfg, base_dir=config.parent)
    try:
        if confirm:
            if cfg.backend != "ledger":
                raise ConfigError("--confirm needs a Ledger signer; this one is " + cfg.backend)
            from defiagent.signing.ledger import LedgerSigner

            assert isinstance(signer, LedgerSigner)  # what a ledger config builds
            found = signer.confirm_address()
        else:
            found = signer.address
    finally:
        _close(signer)
    emit(
        {"ok": True, "backend": cfg.backend, "address": found, "confirmed_on_device": confirm},
        as_json=as_json,
        human=lambda: console.print(found),
    )


@app.command("check")
def check(config: Path = CONFIG, as_json: bool = JSON) -> None:
    """Sign a probe message and verify it recovers to the signer (nothing is broadcast)."""
    cfg = load_signer_config(config)
    signer = build_signer(cfg, base_dir=config.parent)
    probe = f"defiagent signer check {int(time.time())}".encode()
    try:
        found = signer.address
        signer.sign_message(probe)  # verified inside; a mismatch raises and exits 1
    finally:
        _close(signer)
    emit(
        {"ok": True, "backend": cfg.backend, "address": found, "probe": probe.decode()},
        as_json=as_json,
        human=lambda: console.print(f"{cfg.backend} signer {found}: signature verified"),
    )


# --- the signer process -----------------------------------------------------------------------

SERVICE = typer.Option(..., "--config", "-c", help="signer.toml (see docs/custody.md).")


@app.command("serve")
def serve(config: Path = SERVICE, as_json: bool = JSON) -> None:
    """Run the policy-checking signer process: it owns the key and re-checks every transaction.

    Listens on the configured Unix socket (mode 0600; or the socket systemd hands over),
    accepts only the allowed uids, and runs until SIGTERM or Ctrl-C.
    """
    import json as _json
    import sys

    from defiagent.signing.remote.server import serve as run_server
    from defiagent.signing.remote.settings import load_service_config

    cfg = load_service_config(config)

    def ready(service: object) -> None:
        address = getattr(service, "address", "")
        if as_json:
            doc = {"ok": True, "event": "ready", "address": address, "socket": str(cfg.socket)}
            sys.stdout.write(_json.dumps(doc) + "\n")
            sys.stdout.flush()
        else:
            console.print(
                f"signer {address} listening on {cfg.socket} (uids {sorted(cfg.uids)})",
                highlight=False,
            )

    run_server(cfg, on_ready=ready)


def _new_signer_table(
    old: dict[str, object],
    new_keystore: Path | None,
    password_env: str | None,
    new_kms_key_id: str | None,
    create_kms_key: bool,
    new_derivation_path: str | None,
) -> dict[str, object]:
    chosen = [
        x
        for x in (new_keystore, new_kms_key_id or (create_kms_key or None), new_derivation_path)
        if x
    ]
    if len(chosen) != 1:
        raise ConfigError(
            "give exactly one new key: --new-keystore PATH, --new-kms-key-id ID, "
            "--create-kms-key or --new-derivation-path PATH"
        )
    backend = old.get("backend")
    if new_keystore is not None:
        if new_keystore.exists():
            raise ConfigError(f"{new_keystore} already exists; the new keystore must be a new file")
        from eth_account import Account

        from defiagent.signing.keystore import write_keystore
        from defiagent.signing.passwords import password_from_env, prompt_secret

        password = (
            password_from_env(password_env)
            if password_env
            else prompt_secret("New keystore password", confirm=True)
        )
        write_keystore(new_keystore, bytes(Account.create().key), password)
        table: dict[str, object] = {"backend": "keystore", "path": str(new_keystore.resolve())}
        if password_env:
            table["password_env"] = password_env
        return table
    if new_kms_key_id or create_kms_key:
        if backend != "kms":
            raise ConfigError("a new KMS key replaces a KMS key; the old key is " + str(backend))
        table = {k: v for k, v in old.items() if k != "address"}
        if create_kms_key:
            from defiagent.signing.config import build_signer, parse_signer_config

            signer = build_signer(parse_signer_config(dict(old)))
            made = signer._kms().create_key(  # type: ignore[attr-defined]
                KeySpec="ECC_SECG_P256K1",
                KeyUsage="SIGN_VERIFY",
                Description="defiagent signer (rotated in)",
            )
            new_kms_key_id = made["KeyMetadata"]["KeyId"]
        table["key_id"] = new_kms_key_id
        return table
    if backend != "ledger":
        raise ConfigError(
            "--new-derivation-path replaces a Ledger account; the old key is " + str(backend)
        )
    return {k: v for k, v in old.items() if k != "address"} | {
        "derivation_path": new_derivation_path
    }


def _safe_swap(
    cfg: SignerServiceConfig, owner_key: list[Path], owner_password_env: list[str], old: str
) -> Callable[[Any, str], str] | None:
    """With a [safe] in the signer config: the swap of its guard's agent key, signed by the
    given owners (defiagent.safe.admin.swap_agent); None without a Safe."""
    safe = cfg.safe_config()
    if safe is None:
        if owner_key:
            raise ConfigError("--owner-key is for a Safe, and the signer config has no [safe]")
        return None
    if not owner_key:
        raise ConfigError("the signer config has a [safe]: give its owners' keys (--owner-key)")
    if owner_password_env and len(owner_password_env) != len(owner_key):
        raise ConfigError("give one --owner-password-env per --owner-key, in the same order")
    from web3 import Web3

    from defiagent.safe.admin import swap_agent
    from defiagent.safe.chain import SafeRef, read_state
    from defiagent.signing.keystore import KeystoreSigner
    from defiagent.signing.passwords import password_from_env, prompt_secret

    owners = []
    for i, path in enumerate(owner_key):
        password = (
            password_from_env(owner_password_env[i])
            if owner_password_env
            else prompt_secret(f"Password of {path}")
        )
        owners.append(KeystoreSigner(path, password))
    ref = SafeRef(address=safe.address, guard=safe.guard, multi_send=safe.multi_send)
    w3 = Web3(Web3.HTTPProvider(cfg.rpc_endpoint()))  # a secret reference resolved
    state = read_state(w3, ref)
    if state.agent.lower() != old.lower():
        raise Refused(f"the Safe's guard drives {state.agent}, not this signer's key {old}")
    signing = {o.address for o in owners} & set(state.owners)
    if len(signing) < state.threshold:
        raise Refused(
            f"{len(signing)} of the given keys own Safe {safe.address}, which needs "
            f"{state.threshold} owner signatures to swap its agent; nothing was changed"
        )

    def swap(payer: Any, new_address: str) -> str:
        return swap_agent(w3, ref, new_address, owners=owners, payer=payer)

    return swap


@app.command("rotate")
def rotate(
    config: Path = SERVICE,
    new_keystore: Path | None = typer.Option(
        None, "--new-keystore", help="Create the new key as this keystore file."
    ),
    password_env: str | None = typer.Option(
        None, "--password-env", help="NAME of the env variable holding the new keystore's password."
    ),
    new_kms_key_id: str | None = typer.Option(
        None, "--new-kms-key-id", help="An existing KMS key (ECC_SECG_P256K1)."
    ),
    create_kms_key: bool = typer.Option(False, "--create-kms-key", help="Create the new KMS key."),
    new_derivation_path: str | None = typer.Option(
        None, "--new-derivation-path", help="Another account on the same Ledger."
    ),
    owner_key: list[Path] = typer.Option(
        [], "--owner-key", help="With [safe]: a Safe owner's keystore (repeat up to the threshold)."
    ),
    owner_password_env: list[str] = typer.Option(
        [],
        "--owner-password-env",
        help="NAME of the env variable with each --owner-key's password (same order; else a prompt).",
    ),
    as_json: bool = JSON,
) -> None:
    """Move everything to a new key and retire the old one (stop `signer serve` first).

    Revokes every allowance the old address granted (from its Approval logs), moves the
    allowlisted tokens and the ETH to the new address through the guard's rules, retires
    the old key (and disables it in KMS). Every step goes to the signer's audit log.
    """
    import socket as _socket

    from defiagent.agent.allowlist_source import load_allowlist
    from defiagent.monitoring.audit_log import AuditLog
    from defiagent.signing.config import parse_signer_config
    from defiagent.signing.remote.server import AUDIT_FILE
    from defiagent.signing.remote.settings import load_service_config
    from defiagent.signing.rotation import Rotation
    from defiagent.simulation.batch import BatchRpcClient

    cfg = load_service_config(config)
    probe = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        probe.connect(str(cfg.socket))
    except OSError:
        pass
    else:
        raise ConfigError(f"a signer is still serving on {cfg.socket}; stop it before rotating")
    finally:
        probe.close()
    old = build_signer(cfg.signer_config())
    allowlist = load_allowlist(cfg.allowlist_dir, cfg.chain_id)
    # Everything that can refuse is checked before the new key is made or anything moves.
    safe_swap = _safe_swap(cfg, owner_key, owner_password_env, old.address)
    table = _new_signer_table(
        dict(cfg.signer),
        new_keystore,
        password_env,
        new_kms_key_id,
        create_kms_key,
        new_derivation_path,
    )
    new = build_signer(parse_signer_config(table, source="the new key"))
    rpc = BatchRpcClient(cfg.rpc_endpoint())  # a secret reference resolved
    audit = AuditLog(cfg.state_dir / AUDIT_FILE)
    try:
        report = Rotation(
            old=old,
            new=new,
            rpc=rpc,
            allowlist=allowlist,
            chain_id=cfg.chain_id,
            audit=audit,
            state_dir=cfg.state_dir,
            safe_swap=safe_swap,
        ).run()
    finally:
        audit.close()
        _close(old)
        _close(new)
    table["address"] = report.new

    def human() -> None:
        for step in report.steps:
            console.print(f"{step.kind:10} {step.detail}", highlight=False)
        console.print(f"rotated {report.old} -> {report.new}; Safe: {report.safe}", highlight=False)
        console.print(plain("put this [signer] table in the signer config:"), highlight=False)
        for key, value in table.items():
            console.print(plain(f"  {key} = {value!r}".replace("'", '"')), highlight=False)

    emit(
        {"ok": True, **report.model_dump(mode="json"), "signer": table},
        as_json=as_json,
        human=human,
    )
