"""`defiagent demo`: the real Uniswap V2 stack on a local chain, a pool, and one swap.

Interim demo of the foundation; every figure it prints is read back from the chain.
"""

from __future__ import annotations

import typer
from rich.table import Table
from web3 import Web3

from defiagent.chain.anvil import Anvil
from defiagent.cli.output import console, emit
from defiagent.devchain import artifacts
from defiagent.devchain.deploy import contract, create_pool, deploy_uniswap_v2, swap_exact_in


def demo(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output on stdout."),
    liquidity: int = typer.Option(1_000_000, help="Whole tokens of each side put in the pool."),
    swap_amount: int = typer.Option(1_000, help="Whole tokens swapped."),
) -> None:
    """Deploy Uniswap V2, WETH9 and two ERC-20s on a local anvil, add liquidity, swap once."""
    unit = 10**18
    with Anvil() as node:
        w3 = Web3(Web3.HTTPProvider(node.url))
        status = console.status("deploying the real Uniswap V2 stack", spinner="dots")
        if not as_json:
            status.start()
        try:
            d = deploy_uniswap_v2(w3)
            d = create_pool(w3, d, liquidity * unit, 2 * liquidity * unit)
            pair = contract(w3, artifacts.uniswap_v2_pair(), d.pair)
            reserves_before = pair.functions.getReserves().call()[:2]
            swap = swap_exact_in(w3, d, d.token_a, d.token_b, swap_amount * unit)
            reserves_after = pair.functions.getReserves().call()[:2]
        finally:
            if not as_json:
                status.stop()
        codehashes = {
            name: "0x" + Web3.keccak(w3.eth.get_code(addr)).hex().removeprefix("0x")
            for name, addr in (("factory", d.factory), ("router", d.router), ("pair", d.pair))
        }
        result = {
            "chain": {"url": node.url, "chain_id": d.chain_id, "block": w3.eth.block_number},
            "contracts": {
                "factory": d.factory,
                "router": d.router,
                "weth": d.weth,
                "token_a": d.token_a,
                "token_b": d.token_b,
                "pair": d.pair,
            },
            "codehashes": codehashes,
            "reserves_before": [str(r) for r in reserves_before],
            "reserves_after": [str(r) for r in reserves_after],
            "swap": swap.model_dump()
            | {
                "amount_in": str(swap.amount_in),
                "amount_out": str(swap.amount_out),
            },
        }

    def human() -> None:
        table = Table(title=f"Uniswap V2 on a local anvil (chain {d.chain_id})")
        table.add_column("contract")
        table.add_column("address")
        for name, address in result["contracts"].items():
            table.add_row(name, address)
        console.print(table)
        swaps = Table(title="one swap through Router02")
        for col in ("amount in (token_a)", "amount out (token_b)", "gas", "tx"):
            swaps.add_column(col)
        swaps.add_row(
            f"{swap.amount_in / unit:,.6f}",
            f"{swap.amount_out / unit:,.6f}",
            str(swap.gas_used),
            swap.tx_hash,
        )
        console.print(swaps)
        console.print(
            f"pool reserves before {reserves_before[0] / unit:,.2f} / {reserves_before[1] / unit:,.2f}"
            f", after {reserves_after[0] / unit:,.2f} / {reserves_after[1] / unit:,.2f}"
        )

    emit(result, as_json=as_json, human=human)
