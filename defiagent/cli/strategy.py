"""`defiagent strategy pin|verify`: the operator's signed pins of each strategy's code and params.

`pin` hashes every configured strategy (its code, the files it loads, its params) and signs
the lot with the operator's keystore key; with an operator enrolled it needs the TOTP code
too. `verify` (for CI) exits 0 when every configured strategy matches its signed pin, 1
with the sentence saying what changed, 2 for a config error. `train` fits a model-classifier
strategy's model on recorded history (docs/backtest.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from defiagent.cli.output import console, emit, plain
from defiagent.config import load_config

app = typer.Typer(
    help="Strategy pins: the operator-signed code and params each strategy may run with.",
    no_args_is_help=True,
)

CONFIG = typer.Option(..., "--config", "-c", help="agent.toml (its strategies and pins_file).")
JSON = typer.Option(False, "--json", help="Machine-readable output on stdout.")


def _keystore_signer(key: Path, password_env: str | None):
    """A keystore signer; the password comes from a prompt or a named env var, never argv."""
    from defiagent.signing.keystore import KeystoreSigner
    from defiagent.signing.passwords import password_from_env, prompt_secret

    password = (
        password_from_env(password_env) if password_env else prompt_secret("Keystore password")
    )
    return KeystoreSigner(key, password)


def _previous(path: Path):
    """The pins file as it is, to keep the pinned_at of unchanged pins (None if unusable)."""
    from defiagent.errors import DefiagentError
    from defiagent.strategy.pins import read_pins

    try:
        return read_pins(path)
    except DefiagentError:
        return None


@app.command("pin")
def pin(
    config: Path = CONFIG,
    key: Path = typer.Option(..., "--key", help="The operator's V3 keystore file (mode 0600)."),
    password_env: str | None = typer.Option(
        None, "--password-env", help="Read the keystore password from this environment variable."
    ),
    otp_stdin: bool = typer.Option(
        False, "--otp-stdin", help="Read the operator's code as one line of stdin."
    ),
    as_json: bool = JSON,
) -> None:
    """Pin every configured strategy's code and params, signed by an operator key.

    The key must be one of pin_signers in agent.toml. When an operator is enrolled in the
    config's state dir, the operator's code is needed too.
    """
    from defiagent.operator.gates import require_operator_code, state_audit
    from defiagent.signing.keystore import read_keystore_address
    from defiagent.strategy.pins import (
        AUDIT_KIND,
        build_pins,
        check_pin_signer,
        pin_id,
        sign_pins,
        write_pins,
    )

    cfg = load_config(config)
    path = Path(cfg.pins_file)
    # Everything that can fail cheaply before the password and the one-time code are asked.
    check_pin_signer(cfg, read_keystore_address(key))
    previous = _previous(path)
    pins = build_pins(cfg, previous=previous)
    signer = _keystore_signer(key, password_env)
    address = check_pin_signer(cfg, signer.address)
    with state_audit(cfg.state_dir) as audit:
        needed_code = require_operator_code(
            cfg.state_dir, "strategy-pin", audit=audit, otp_stdin=otp_stdin
        )
        pinfile = sign_pins(pins, signer)
        write_pins(path, pinfile)
        ids = {name: pin_id(p) for name, p in pinfile.pins.items()}
        dropped = sorted(set(previous.pins) - set(pins)) if previous is not None else []
        audit.record(
            AUDIT_KIND,
            {
                "pins_file": str(path),
                "signer": address,
                "pins": ids,
                "dropped": dropped,
                "operator_code": needed_code,
            },
        )
    rows: list[dict[str, Any]] = [
        {
            "name": name,
            "source": p.source,
            "code_sha256": p.code_sha256,
            "params_sha256": p.params_sha256,
            "pin_id": ids[name],
            "files": len(p.file_digests),
            "pinned_at": p.pinned_at,
        }
        for name, p in pinfile.pins.items()
    ]
    data = {
        "ok": True,
        "pins_file": str(path),
        "signer": address,
        "pins": rows,
        "dropped": dropped,
    }

    def human() -> None:
        table = Table(title=f"strategy pins {plain(path)}")
        for column in ("name", "source", "code sha256", "params sha256", "pin id"):
            table.add_column(column, overflow="fold")
        for r in rows:
            table.add_row(
                plain(r["name"]),
                plain(r["source"]),
                r["code_sha256"][:16] + "…",
                r["params_sha256"][:16] + "…",
                r["pin_id"],
            )
        console.print(table)
        for name in dropped:
            console.print(f"[yellow]dropped the pin of {plain(name)}[/] (no longer configured)")
        console.print(f"[green]signed by {address}[/]")

    emit(data, as_json=as_json, human=human)


@app.command("verify")
def verify(config: Path = CONFIG, as_json: bool = JSON) -> None:
    """Check every configured strategy against its signed pin (exit 1 naming what changed).

    Fit for CI: reads only. When the config's state dir exists, the outcome is also
    recorded in its audit log.
    """
    from defiagent.errors import Refused
    from defiagent.operator.gates import state_audit
    from defiagent.strategy.pins import verify_pins

    cfg = load_config(config)
    path = Path(cfg.pins_file)
    try:
        ids = verify_pins(cfg)
    except Refused as exc:
        if Path(cfg.state_dir).is_dir():
            with state_audit(cfg.state_dir) as audit:
                audit.record(
                    "strategy-verify",
                    {"pins_file": str(path), "ok": False, "reason": str(exc)},
                )
        raise
    if Path(cfg.state_dir).is_dir():
        with state_audit(cfg.state_dir) as audit:
            audit.record("strategy-verify", {"pins_file": str(path), "ok": True, "pins": ids})
    data = {"ok": True, "pins_file": str(path), "pins": ids}

    def human() -> None:
        for name, pid in ids.items():
            console.print(f"[green]OK[/] {plain(name)} (pin {pid})", highlight=False)
        console.print(
            f"[bold green]every strategy matches its signed pin[/] ({plain(path)})", highlight=False
        )

    emit(data, as_json=as_json, human=human)


@app.command("train")
def train_model(
    config: Path = CONFIG,
    data: Path = typer.Option(..., "--data", help="A history folder (market record/import)."),
    strategy: str | None = typer.Option(
        None, "--strategy", help="A model-classifier strategy of the config (default: the first)."
    ),
    from_block: int | None = typer.Option(None, "--from", help="First block trained on."),
    to_block: int | None = typer.Option(None, "--to", help="Last block trained on (inclusive)."),
    kind: str = typer.Option("logistic", "--kind", help="logistic or tree."),
    lookback: int = typer.Option(5, "--lookback", help="Past log returns used as features."),
    horizon: int = typer.Option(1, "--horizon", help="Ticks ahead the model predicts."),
    regularization: float = typer.Option(1.0, "--regularization", help="Logistic: C."),
    max_depth: int = typer.Option(3, "--max-depth", help="Tree: depth (0: unlimited)."),
    min_leaf: int = typer.Option(20, "--min-leaf", help="Tree: fewest samples per leaf."),
    as_json: bool = JSON,
) -> None:
    """Train a model-classifier strategy's model on recorded history, into its `model` file.

    The file must be one of the strategy's `files`, so its digest is pinned: pin the
    strategy again afterwards, and backtest it (docs/backtest.md).
    """
    from pydantic import ValidationError

    from defiagent.backtest.engine import pick_strategy
    from defiagent.backtest.gates.replay import MODEL_BUILTIN
    from defiagent.backtest.training import ModelSpec, train, write_model
    from defiagent.errors import ConfigError
    from defiagent.market.history import MarketHistory

    cfg = load_config(config)
    sc = pick_strategy(cfg, strategy)
    if sc.builtin != MODEL_BUILTIN:
        raise ConfigError(f"strategy {sc.name} is not a {MODEL_BUILTIN} strategy: nothing to train")
    try:
        spec = ModelSpec(
            kind=kind,  # validated by the model
            lookback=lookback,
            horizon=horizon,
            regularization=regularization,
            max_depth=max_depth,
            min_leaf=min_leaf,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"--{str(first['loc'][0]).replace('_', '-')}: {first['msg']}") from None
    for key in ("model", "base", "quote"):
        if key not in sc.params:
            raise ConfigError(f"strategy {sc.name} has no {key} in its params")
    out = Path(str(sc.params["model"]))
    if not out.is_absolute():
        raise ConfigError(
            f"strategy {sc.name}'s model {out} must be an absolute path (the sandbox does not "
            "run beside agent.toml)"
        )
    if out.resolve() not in {Path(f).resolve() for f in sc.files}:
        raise ConfigError(
            f"strategy {sc.name}'s model {out} is not one of its files: list it in `files` "
            "so its digest is pinned"
        )
    history = MarketHistory.load(data)
    start = 0 if from_block is None else history.index_of_block(from_block)
    end = len(history) if to_block is None else history.index_of_block(to_block + 1)
    model = train(
        history, str(sc.params["base"]), str(sc.params["quote"]), spec, start=start, end=end
    )
    digest = write_model(out, model)
    result = {
        "ok": True,
        "strategy": sc.name,
        "model": str(out),
        "sha256": digest,
        "spec": spec.model_dump(),
        "trained_on": model.trained_on,
        "in_sample_accuracy": model.accuracy,
    }

    def human() -> None:
        t = model.trained_on
        console.print(
            f"[green]trained[/] a {spec.kind} model for {plain(sc.name)} on blocks "
            f"{t['from_block']}-{t['to_block']} ({t['samples']} samples; in-sample accuracy "
            f"{model.accuracy:.1%}, which proves nothing: backtest it)\n"
            f"wrote {plain(out)} (sha256 {digest[:16]}…); pin the strategy again: "
            f"defiagent strategy pin -c {plain(config)} --key KEYSTORE",
            highlight=False,
        )

    emit(result, as_json=as_json, human=human)
