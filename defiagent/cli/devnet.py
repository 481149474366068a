"""`defiagent devnet up|down|status`: a local mainnet stand-in that keeps running between
commands (README, quick start)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from defiagent.cli.output import console, emit, err_console, plain

app = typer.Typer(
    help="A local mainnet stand-in on anvil: up (in the background), status, down.",
    no_args_is_help=True,
)
JSON = typer.Option(False, "--json", help="Machine-readable output on stdout.")
OUT = typer.Option(Path("devnet"), "--out", help="The devnet's folder (new or empty for up).")


@app.command("up")
def up(
    out: Path = OUT,
    port: int = typer.Option(8545, "--port", help="anvil's port on 127.0.0.1 (0: any free one)."),
    trade_seconds: float = typer.Option(
        3.0, "--trade-seconds", help="How often the traders swap on each pool."
    ),
    as_json: bool = JSON,
) -> None:
    """Start anvil and traders in the background; deploy; write agent.toml, allowlist, keys."""
    from defiagent.devnet.lifecycle import up as devnet_up

    def say(message: str) -> None:
        if not as_json:
            err_console.print(f"[dim]{plain(message)}[/]", highlight=False)

    result = devnet_up(out, port=port, trade_seconds=trade_seconds, say=say)

    def human() -> None:
        console.print(
            f"[bold]devnet up[/] at {result.rpc_url} (chain {result.chain_id}) in "
            f"{result.seconds:g}s; anvil pid {result.anvil_pid}, traders pid {result.traders_pid}",
            highlight=False,
        )
        table = Table(title="allowlisted contracts (signed by the two devnet reviewers)")
        table.add_column("contract")
        table.add_column("address")
        for name, address in result.contracts.items():
            table.add_row(plain(name), address)
        console.print(table)
        for protocol, why in result.left_out.items():
            console.print(
                f"[bold yellow]WARNING:[/] {plain(protocol)} is deployed but not allowlisted: "
                f"{plain(why)}",
                highlight=False,
            )
        console.print(f"agent {result.accounts['agent']} (funded); files in {plain(result.out)}")
        console.print("next:")
        for line in result.commands:
            console.print(f"  {plain(line)}", highlight=False)

    emit(result, as_json=as_json, human=human)


@app.command("down")
def down(out: Path = OUT, as_json: bool = JSON) -> None:
    """Stop the devnet's anvil and traders (nothing to stop is not an error); its files stay."""
    from defiagent.devnet.lifecycle import down as devnet_down

    result = devnet_down(out)

    def human() -> None:
        if not result.found:
            console.print(f"no devnet in {plain(result.out)}: nothing to stop", highlight=False)
        elif result.stopped:
            console.print(f"stopped {', '.join(result.stopped)}", highlight=False)
            console.print(f"its files stay in {plain(result.out)}", highlight=False)
        else:
            console.print(f"the devnet in {plain(result.out)} was already down", highlight=False)

    emit(result, as_json=as_json, human=human)


@app.command("status")
def status(out: Path = OUT, as_json: bool = JSON) -> None:
    """Whether the devnet's anvil and traders run (exit 1 when not)."""
    from defiagent.devnet.lifecycle import status as devnet_status

    result = devnet_status(out)

    def human() -> None:
        state = "up" if result.up else "DOWN"
        parts = ", ".join(f"{k} {'running' if v else 'stopped'}" for k, v in result.running.items())
        console.print(
            f"devnet {state} at {result.rpc_url}: {parts}; {result.trader_rounds} trader rounds",
            highlight=False,
        )

    emit(result, as_json=as_json, human=human)
    if not result.up:  # already said above (or in the JSON): exit 1 without a second message
        raise typer.Exit(1)
