"""Latency of the path from intent to receipt, on the real stack, against a fresh-fork baseline.

Starts a local anvil standing in for mainnet, deploys Uniswap V2 (defiagent.devchain),
forks it once with ForkManager, and runs N swaps token_a -> token_b -> token_a ... through
the real planner, guard, fork simulation, outcome checks, journaled executor and a signer,
timing each stage. Every swap is mined upstream, so the fork resets to a new block before
every simulation (the worst case: one trade per block).

Baseline, measured in the same run on fewer samples: a fresh anvil fork per transaction
(start, simulate the same call, stop), the naive way the persistent fork replaces.

    .venv/bin/python scripts/bench.py [--n 200] [--baseline 15] [--json bench-results.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from eth_account import Account
from rich.console import Console
from rich.table import Table
from web3 import Web3

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from defiagent.agent import scopes
from defiagent.allowlist.models import ActiveAllowlist, AllowlistEntry, Role
from defiagent.chain.anvil import Anvil
from defiagent.devchain import artifacts
from defiagent.devchain.deploy import create_pool, deploy_uniswap_v2
from defiagent.execution.executor import Executor
from defiagent.execution.fees import FeePolicy
from defiagent.execution.journal import Journal, State
from defiagent.execution.planner import Planner, ProtocolAddresses
from defiagent.guard.base import FeeQuote, GuardContext, RiskState
from defiagent.guard.guard import Guard
from defiagent.market.observer import MarketObserver, numeraire_prices
from defiagent.market.references import TwapReference
from defiagent.signing.base import SignedTransaction, verify_signed_transaction
from defiagent.simulation import ForkManager, Simulator
from defiagent.simulation.checks import CheckContext, run_checks
from defiagent.strategy.intents import SwapExactIn

STAGES = (
    ("guard", "guard decision (Guard.decide, all rules)"),
    ("sync", "fork sync (head check; anvil_reset if the follower has not)"),
    ("simulate", "fork simulation (eth_simulateV1 + callTracer, one batch)"),
    ("checks", "outcome checks (6 checks)"),
    ("sign", "signing (journal, fees, nonce, sign, verify)"),
    ("send", "send to receipt (broadcast, journal, 1 confirmation)"),
    ("sync+simulate", "fork sync + simulation"),
    ("intent_to_signed", "intent to signed tx (guard .. sign, planner excluded)"),
)


class BenchSigner:
    """A throwaway in-memory key, for this benchmark only (the package has no such signer)."""

    def __init__(self) -> None:
        self._account = Account.create()

    @property
    def address(self) -> str:
        return self._account.address

    def sign_transaction(self, tx: dict[str, Any]) -> SignedTransaction:
        signed = self._account.sign_transaction(tx)
        return verify_signed_transaction(signed.raw_transaction, self.address, tx)

    def sign_message(self, message: bytes) -> bytes:  # pragma: no cover - unused here
        raise NotImplementedError

    def sign_typed_data(self, typed_data: dict[str, Any]) -> bytes:  # pragma: no cover
        raise NotImplementedError


class Off:
    def is_on(self) -> bool:
        return False


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(name: str, values: list[float]) -> dict[str, Any]:
    return {
        "name": name,
        "p50_ms": round(statistics.median(values), 3),
        "p95_ms": round(percentile(values, 95), 3),
        "count": len(values),
    }


def ms(start: float, end: float) -> float:
    return (end - start) * 1000


def build_allowlist(w3: Web3, dex, chain_id: int) -> ActiveAllowlist:
    def entry(address, name, role, functions, **extra) -> AllowlistEntry:
        code = bytes(w3.eth.get_code(address))
        return AllowlistEntry(
            chain_id=chain_id,
            address=address,
            name=name,
            role=role,
            codehash="0x" + Web3.keccak(code).hex().removeprefix("0x"),
            functions=functions,
            **extra,
        )

    entries = [
        entry(dex.router, "UniswapV2Router02", Role.ROUTER, scopes.router_functions()),
        entry(dex.weth, "WETH9", Role.WRAPPED_NATIVE, scopes.weth_functions()),
        entry(dex.token_a, "Demo USD", Role.TOKEN, scopes.token_functions()),
        entry(dex.token_b, "Demo Token", Role.TOKEN, scopes.token_functions()),
        entry(dex.pair, "UniswapV2Pair DUSD/DTKN", Role.POOL, scopes.pair_functions()),
    ]
    return ActiveAllowlist(chain_id=chain_id, entries={e.address: e for e in entries})


def run(
    n: int, baseline_n: int, workdir: Path, console: Console, *, follow: bool = False
) -> dict[str, Any]:
    times: dict[str, list[float]] = {key: [] for key, _ in STAGES}
    refusals: list[str] = []
    with Anvil(log_dir=workdir / "upstream") as upstream:
        w3 = Web3(Web3.HTTPProvider(upstream.url))
        dex = create_pool(w3, deploy_uniswap_v2(w3), 10**24, 2 * 10**24)
        chain_id = w3.eth.chain_id
        signer = BenchSigner()
        agent = signer.address
        w3.eth.wait_for_transaction_receipt(
            w3.eth.send_transaction({"from": dex.deployer, "to": agent, "value": 100 * 10**18})
        )
        for token in (dex.token_a, dex.token_b):
            erc20 = w3.eth.contract(address=token, abi=artifacts.demo_token().abi)
            w3.eth.wait_for_transaction_receipt(
                erc20.functions.transfer(agent, 10**23).transact({"from": dex.deployer})
            )
        allowlist = build_allowlist(w3, dex, chain_id)
        guard = Guard()
        planner = Planner(agent, ProtocolAddresses(router=dex.router, weth=dex.weth))
        observer = MarketObserver(
            w3, pools=[dex.pair], tokens=[dex.token_a, dex.token_b], reference=TwapReference()
        )
        journal = Journal(workdir / "journal.sqlite")
        executor = Executor(
            upstream.url, signer, journal, FeePolicy(), kill_switch=Off(), poll_interval=0.005
        )
        amount = 10**18
        with ForkManager(upstream.url, log_dir=workdir / "fork") as fork:
            sim = Simulator(fork, sync=False)  # sync is timed on its own
            if follow:
                fork.follow(
                    poll_interval=0.01
                )  # resets + prefetch overlap the untimed market observation
            tokens = sim.token_meta([dex.token_a, dex.token_b])
            check_ctx = CheckContext(allowlist=allowlist, tokens=tokens)
            direction = [(dex.token_a, dex.token_b), (dex.token_b, dex.token_a)]
            sample_call = None
            i = 0
            attempts = 0
            while i < n and attempts < 2 * n:
                attempts += 1
                token_in, token_out = direction[i % 2]
                # Observation and planning happen before an intent exists: not timed.
                market = observer.snapshot()
                portfolio = observer.portfolio(agent, spenders=[dex.router])
                intent = SwapExactIn(
                    token_in=token_in, token_out=token_out, amount_in=amount, min_amount_out=1
                )
                calls = planner.plan(intent, market, portfolio)
                ctx = GuardContext(
                    agent=agent,
                    chain_id=chain_id,
                    allowlist=allowlist,
                    now=int(time.time()),
                    block_number=market.block_number,
                    block_timestamp=market.block_timestamp,
                    codehashes={a: e.codehash for a, e in allowlist.entries.items()},
                    market=market,
                    prices=numeraire_prices(market, weth=dex.weth),
                    fees=FeeQuote(
                        base_fee_per_gas=market.base_fee_per_gas, max_priority_fee_per_gas=10**9
                    ),
                    intent_kind=intent.kind,
                    intents_in_window=1,
                    # A flat history: the risk rules run their arithmetic and allow.
                    risk=RiskState(value_now=1.0, loss_pct_in_window=0.0, drawdown_pct=0.0),
                )
                for call in calls:
                    t0 = time.perf_counter()
                    decision = guard.decide(call, ctx)
                    t1 = time.perf_counter()
                    fork.sync()
                    t2 = time.perf_counter()
                    outcome = sim.simulate(call)
                    t3 = time.perf_counter()
                    checked = run_checks(call, outcome, check_ctx)
                    t4 = time.perf_counter()
                    if not checked.allowed:
                        raise SystemExit(f"bench: outcome checks refused: {checked.reason()}")
                    if not decision.allowed:
                        refusals.append(decision.reason())
                    executor.sign(call, outcome)
                    t5 = time.perf_counter()
                    result = executor.send(call.journal_key)
                    t6 = time.perf_counter()
                    if result.state != State.CONFIRMED:
                        raise SystemExit(
                            f"bench: {call.journal_key} ended {result.state}: gas used "
                            f"{result.gas_used}, simulated {outcome.gas_used} at block "
                            f"{outcome.block_number}, mined in {result.block_number}"
                        )
                    if call.intent_kind == "swap-exact-in" and call.data[:10] != "0x095ea7b3":
                        # Approvals happen twice (once per token); only swaps are samples.
                        sample_call = call
                        times["guard"].append(ms(t0, t1))
                        times["sync"].append(ms(t1, t2))
                        times["simulate"].append(ms(t2, t3))
                        times["checks"].append(ms(t3, t4))
                        times["sign"].append(ms(t4, t5))
                        times["send"].append(ms(t5, t6))
                        times["sync+simulate"].append(ms(t1, t3))
                        times["intent_to_signed"].append(ms(t0, t5))
                        i += 1
                if i and i % 50 == 0:
                    console.log(f"{i}/{n} swaps")
            resets = fork.resets

        # Baseline: a fresh fork per transaction, same simulator, same call.
        baseline: list[float] = []
        assert sample_call is not None
        for j in range(baseline_n):
            t0 = time.perf_counter()
            with ForkManager(upstream.url, log_dir=workdir / f"baseline-{j}") as fresh:
                Simulator(fresh, sync=False).simulate(sample_call)
            baseline.append(ms(t0, time.perf_counter()))
        journal.close()

    stages = [summary(key, times[key]) | {"description": label} for key, label in STAGES]
    base = summary("spawn-fork-per-tx", baseline) | {
        "description": "fresh anvil fork per tx: start, simulate, stop"
    }
    p50 = {s["name"]: s["p50_ms"] for s in stages}
    return {
        "machine": {
            "python": platform.python_version(),
            "cpus": __import__("os").cpu_count(),
            "platform": platform.platform(),
        },
        "swaps": n,
        "fork_follower": follow,
        "fork_resets": resets,
        "guard_refusals": len(refusals),
        "guard_refusal_sample": refusals[:3],
        "stages": stages,
        "baseline": base,
        "baseline_ratio": round(base["p50_ms"] / p50["simulate"], 1),
        "baseline_ratio_with_sync": round(base["p50_ms"] / p50["sync+simulate"], 1),
        "targets": {
            "guard_p50_under_1ms": p50["guard"] < 1.0,
            "simulation_20x_faster_than_spawn": base["p50_ms"] / p50["simulate"] >= 20,
            "intent_to_signed_p50_under_50ms": p50["intent_to_signed"] < 50.0,
        },
    }


def render(results: dict[str, Any], console: Console) -> None:
    table = Table(title=f"defiagent bench: {results['swaps']} swaps on a local anvil")
    for column in ("stage", "p50 ms", "p95 ms", "count"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for s in [*results["stages"], results["baseline"]]:
        table.add_row(s["description"], f"{s['p50_ms']:.2f}", f"{s['p95_ms']:.2f}", str(s["count"]))
    console.print(table)
    console.print(
        f"persistent fork vs fresh fork per tx (p50): {results['baseline_ratio']}x faster "
        f"per simulation, {results['baseline_ratio_with_sync']}x including a reset to a new "
        f"block before every simulation ({results['fork_resets']} resets)"
    )
    if results["guard_refusals"]:
        console.print(
            f"[yellow]the guard refused {results['guard_refusals']} swaps (timed anyway): "
            f"{results['guard_refusal_sample'][0]}"
        )
    for target, met in results["targets"].items():
        console.print(f"  {'[green]met' if met else '[red]missed'}[/] {target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="swaps to time (default 200)")
    parser.add_argument("--baseline", type=int, default=15, help="fresh-fork samples (15)")
    parser.add_argument("--json", type=Path, default=Path("bench-results.json"))
    parser.add_argument(
        "--follow",
        action="store_true",
        help="reset the fork in ForkManager's follower thread (polling every 10 ms) instead "
        "of inline; with one trade per block it mostly races the hot path on 2 cores",
    )
    args = parser.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory(prefix="defiagent-bench-") as tmp:
        results = run(args.n, args.baseline, Path(tmp), console, follow=args.follow)
    render(results, console)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    console.print(f"results written to {args.json}")


if __name__ == "__main__":
    main()
