"""`defiagent market record|import`: market history for backtests (docs/backtest.md).

`record` reads Uniswap V2 pools' `Sync` events and block headers over a block range into a
history folder (Parquet); `import` turns a CSV of candles into the same format.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from defiagent.cli.output import console, emit, err_console, plain
from defiagent.errors import ConfigError

app = typer.Typer(
    help="Market history for backtests: record it from a chain, or import candles.",
    no_args_is_help=True,
)
JSON = typer.Option(False, "--json", help="Machine-readable output on stdout.")


def _rpc_url(value: str) -> str:
    """A plain http(s) URL, or a secret reference holding one (env:NAME, keyring:...): an
    RPC URL with an API key should not be on the command line, where `ps` shows it."""
    from defiagent.chain.forwarder import looks_like_credential, redact_url
    from defiagent.secrets.reference import looks_like_reference
    from defiagent.strategy.secrets import resolve_secret

    if looks_like_reference(value):
        return resolve_secret(value, what=f"--rpc-url {value}").strip()
    if looks_like_credential(value):
        err_console.print(
            f"[bold yellow]WARNING:[/] --rpc-url {plain(redact_url(value))} carries what looks "
            "like an API key, visible to every local user in `ps`; pass it as --rpc-url env:NAME",
            highlight=False,
            soft_wrap=True,
        )
    return value


def _summary(history, what: str) -> dict:
    return {
        "ok": True,
        "what": what,
        "out": str(history.path),
        "chain_id": history.meta.chain_id,
        "source": history.meta.source,
        "from_block": history.meta.from_block,
        "to_block": history.meta.to_block,
        "ticks": len(history),
        "pools": [
            {
                "address": p.address,
                "pair": f"{p.token0.symbol}/{p.token1.symbol}",
                "token0": p.token0.address,
                "token1": p.token1.address,
            }
            for p in history.meta.pools
        ],
        "sha256": history.content_hash,
    }


def _human(data: dict) -> None:
    table = Table(title=f"market history {plain(data['out'])}")
    table.add_column("pool")
    table.add_column("pair")
    for p in data["pools"]:
        table.add_row(p["address"], plain(p["pair"]))
    console.print(table)
    console.print(
        f"{data['what']} {data['ticks']} ticks, blocks {data['from_block']}-{data['to_block']} "
        f"of chain {data['chain_id']}; sha256 {data['sha256']}",
        highlight=False,
    )


@app.command("record")
def record(
    rpc_url: str = typer.Option(
        ..., "--rpc-url", help="The chain to read: an http(s) URL or env:NAME holding one."
    ),
    pools: list[str] = typer.Option(
        ..., "--pools", help="Uniswap V2 pair addresses (repeat, or comma-separated)."
    ),
    from_block: int = typer.Option(..., "--from-block", help="First block (at least 1)."),
    to_block: int = typer.Option(..., "--to-block", help="Last block, inclusive."),
    out: Path = typer.Option(..., "--out", help="A new folder for the history."),
    max_range: int = typer.Option(
        2_000, "--max-range", help="Blocks per eth_getLogs request (halved when refused)."
    ),
    as_json: bool = JSON,
) -> None:
    """Record pools' reserves (Sync events) and block times over a block range to Parquet."""
    from defiagent.market.history import record as record_history
    from defiagent.types import parse_address

    addresses = [
        parse_address(a.strip(), "--pools") for item in pools for a in item.split(",") if a.strip()
    ]
    if len(set(addresses)) != len(addresses):
        raise ConfigError("--pools names a pool twice")
    say = (lambda m: None) if as_json else (lambda m: err_console.print(f"[dim]{plain(m)}[/]"))
    history = record_history(
        _rpc_url(rpc_url), addresses, from_block, to_block, out, max_range=max_range, progress=say
    )
    data = _summary(history, "recorded")
    emit(data, as_json=as_json, human=lambda: _human(data))


@app.command("import")
def import_(
    csv_file: Path = typer.Argument(..., help="timestamp,open,high,low,close,volume (docs)."),
    out: Path = typer.Option(..., "--out", help="A new folder for the history."),
    chain_id: int = typer.Option(..., "--chain-id", help="The chain the agent will trade on."),
    pool: str = typer.Option(..., "--pool", help="The pair address the candles stand for."),
    base: str = typer.Option(..., "--base", help="The token the prices are of."),
    quote: str = typer.Option(..., "--quote", help="The token the prices are in."),
    base_symbol: str = typer.Option("BASE", "--base-symbol"),
    quote_symbol: str = typer.Option("QUOTE", "--quote-symbol"),
    base_decimals: int = typer.Option(18, "--base-decimals", min=0, max=36),
    quote_decimals: int = typer.Option(18, "--quote-decimals", min=0, max=36),
    quote_depth: float = typer.Option(
        ..., "--quote-depth", help="The pool's quote reserve, in whole tokens (fixes price impact)."
    ),
    as_json: bool = JSON,
) -> None:
    """Import OHLCV candles as one pool's history (close = spot, constant quote depth)."""
    from defiagent.market.history import import_ohlcv
    from defiagent.market.models import TokenInfo
    from defiagent.types import parse_address

    if chain_id <= 0:
        raise ConfigError("--chain-id must be a positive chain id")
    history = import_ohlcv(
        csv_file,
        out,
        chain_id=chain_id,
        pool=parse_address(pool, "--pool"),
        base=TokenInfo(
            address=parse_address(base, "--base"), symbol=base_symbol, decimals=base_decimals
        ),
        quote=TokenInfo(
            address=parse_address(quote, "--quote"), symbol=quote_symbol, decimals=quote_decimals
        ),
        quote_depth=quote_depth,
    )
    data = _summary(history, "imported")
    emit(data, as_json=as_json, human=lambda: _human(data))


@app.command("devnet")
def devnet(
    workdir: Path = typer.Option(..., "--workdir", help="An empty folder for its files."),
    password_env: str = typer.Option(
        ..., "--password-env", help="The environment variable holding the keystores' password."
    ),
    blocks: int = typer.Option(200, "--blocks", help="Blocks of history the traders make."),
    port: int = typer.Option(8545, "--port", help="The local port anvil listens on."),
    trade_seconds: float = typer.Option(
        3.0, "--trade-seconds", help="While it runs, a trader swaps this often (0: never)."
    ),
) -> None:
    """A local chain to try the backtest flow on; runs until Ctrl-C (docs/backtest.md)."""
    import time

    from web3 import Web3

    from defiagent.backtest.devnet import commands, set_up
    from defiagent.chain.anvil import Anvil

    say = lambda m: err_console.print(f"[dim]{plain(m)}[/]")  # noqa: E731
    with Anvil(port=port, log_dir=workdir / "anvil") as node:
        w3 = Web3(Web3.HTTPProvider(node.url))
        net = set_up(w3, node.url, workdir, blocks=blocks, password_env=password_env, on_step=say)
        console.print(
            f"[bold]devnet up[/] at {node.url} (chain {w3.eth.chain_id})", highlight=False
        )
        console.print(f"history: blocks {net.first_block}-{net.last_block}", highlight=False)
        console.print("in another terminal, with the same password variable set:")
        for line in commands(net, password_env):
            console.print(f"  {plain(line)}", highlight=False, soft_wrap=True)
        console.print("Ctrl-C stops the chain.")
        try:
            while True:
                if trade_seconds > 0:
                    time.sleep(trade_seconds)
                    net.noise.step()
                else:
                    time.sleep(3600)
        except KeyboardInterrupt:
            console.print("devnet stopped")
