"""A Uniswap V3 swap's plan simulation against a Uniswap V2 swap's, on the same fork.

Starts a local anvil, deploys the demo market (Uniswap V2, WETH9, DUSD, DTKN) and the
Uniswap V3 stack beside it (devnet pools DUSD/DTKN at 0.05% and 0.3%), forks it once, and
plans the same trade on each venue through the registry's planners: approve + swap, 100
DUSD for DTKN (V3 at 0.05%). Each plan is simulated on the persistent fork as the agent
does (`Simulator.simulate_sequence`: eth_simulateV1 plus the call trace), alternating V2
and V3 so both see the same cache and load. Timed apart: the V3-only step before the guard,
QuoterV2 read on the fork (`protocols.quoting.with_prequotes`). Cold figures too: the fork
reset to a new upstream block right before each simulation (empty cache).

The target: a V3 swap's plan simulation within 1.5 times a V2 swap's (p50, warm).

    .venv/bin/python scripts/bench_v3.py [--n 200] [--cold 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from eth_account import Account
from web3 import Web3
from web3.types import RPCEndpoint

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from defiagent.agent.devnet import UNIT, deploy_market, fund
from defiagent.allowlist.models import ActiveAllowlist, AllowlistEntry, Role
from defiagent.chain.anvil import Anvil
from defiagent.market.models import MarketSnapshot, PortfolioSnapshot, TokenInfo
from defiagent.protocols import registry
from defiagent.protocols.base import PlanContext, ProtocolAddresses
from defiagent.protocols.quoting import with_prequotes
from defiagent.protocols.uniswap_v3.devnet import deploy_demo_v3
from defiagent.simulation import ForkManager, Simulator
from defiagent.strategy.intent_base import SwapExactIn

TARGET_RATIO = 1.5


def _p50(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 3)


def measure(n: int = 200, cold: int = 20, workdir: Path | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="defiagent-bench-v3-") as tmp:
        root = workdir or Path(tmp)
        with Anvil(log_dir=root / "upstream") as upstream:
            w3 = Web3(Web3.HTTPProvider(upstream.url))
            market = deploy_market(w3)
            v3 = deploy_demo_v3(w3, weth=market.dex.weth, dusd=market.dusd, dtkn=market.dtkn)
            agent = Account.create().address
            fund(w3, market, agent, eth=UNIT, dusd=10_000 * UNIT)
            addresses = ProtocolAddresses(
                router=market.dex.router,
                weth=market.dex.weth,
                factory=market.dex.factory,
                sections={"uniswap-v3": v3.settings()},
            )
            block = w3.eth.get_block("latest")
            tokens = {
                t: TokenInfo(address=t, symbol=s, decimals=18)
                for t, s in ((market.dusd, "DUSD"), (market.dtkn, "DTKN"))
            }
            snapshot = MarketSnapshot(
                chain_id=31337,
                block_number=block["number"],
                block_timestamp=block["timestamp"],
                tokens=tokens,
                pools=[],
            )
            portfolio = PortfolioSnapshot(
                owner=agent, block_number=block["number"], eth_balance=UNIT
            )
            ctx = PlanContext(agent=agent, addresses=addresses)

            def plan(venue: str, fees: list[int] | None):
                intent = SwapExactIn(
                    token_in=market.dusd,
                    token_out=market.dtkn,
                    amount_in=100 * UNIT,
                    min_amount_out=1,
                    venue=venue,
                    fees=fees,
                    via=[],
                )
                # V2's planner finds no pool in this bare snapshot and plans the direct
                # path; V3's names its fee tier.
                return registry.route(intent).planner(ctx).plan(intent, snapshot, portfolio)

            v2_calls = plan("uniswap-v2", None)
            v3_calls = plan("uniswap-v3", [500])
            # The allowlist the prequote reads roles from (codehashes do not matter here).
            router_v3 = registry.scope("uniswap-v3", "router")
            allowlist = ActiveAllowlist(
                chain_id=31337,
                entries={
                    v3.router: AllowlistEntry(
                        chain_id=31337,
                        address=v3.router,
                        name="SwapRouter",
                        role=Role.ROUTER,
                        codehash="0x" + "00" * 32,
                        functions=list(router_v3.functions),
                    )
                },
            )
            times: dict[str, list[float]] = {"v2": [], "v3": [], "v3_prequote": []}
            cold_times: dict[str, list[float]] = {"v2": [], "v3": []}
            with ForkManager(upstream.url, log_dir=root / "fork") as fork:
                sim = Simulator(fork, sync=False)
                fork_w3 = Web3(Web3.HTTPProvider(fork.url))
                for calls in (v2_calls, v3_calls):  # both succeed before anything is timed
                    outcomes = sim.simulate_sequence(calls)
                    if not all(o.success for o in outcomes):
                        raise SystemExit("a benchmark plan reverted on the fork")
                for _ in range(n):
                    for name, calls in (("v2", v2_calls), ("v3", v3_calls)):
                        t0 = time.perf_counter()
                        sim.simulate_sequence(calls)
                        times[name].append((time.perf_counter() - t0) * 1000)
                    t0 = time.perf_counter()
                    quoted = with_prequotes(
                        snapshot, v3_calls, allowlist, fork_w3, fork.block_number or 0, addresses
                    )
                    times["v3_prequote"].append((time.perf_counter() - t0) * 1000)
                    assert quoted.swap_quotes, "QuoterV2 did not quote the V3 swap"
                for _ in range(cold):
                    for name, calls in (("v2", v2_calls), ("v3", v3_calls)):
                        w3.provider.make_request(RPCEndpoint("evm_mine"), [])  # a new head: cold
                        fork.sync()
                        t0 = time.perf_counter()
                        sim.simulate_sequence(calls)
                        cold_times[name].append((time.perf_counter() - t0) * 1000)
    v2, v3_ = _p50(times["v2"]), _p50(times["v3"])
    ratio = round(v3_ / v2, 2)
    return {
        "samples": n,
        "cold_samples": cold,
        "v2_simulate_p50_ms": v2,
        "v2_simulate_p95_ms": _p95(times["v2"]),
        "v3_simulate_p50_ms": v3_,
        "v3_simulate_p95_ms": _p95(times["v3"]),
        "v3_prequote_p50_ms": _p50(times["v3_prequote"]),
        "ratio": ratio,
        "cold_v2_simulate_p50_ms": _p50(cold_times["v2"]) if cold else None,
        "cold_v3_simulate_p50_ms": _p50(cold_times["v3"]) if cold else None,
        "cold_ratio": round(_p50(cold_times["v3"]) / _p50(cold_times["v2"]), 2) if cold else None,
        "target_ratio": TARGET_RATIO,
        "met": ratio <= TARGET_RATIO,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="warm samples per venue (200)")
    parser.add_argument("--cold", type=int, default=20, help="cold samples per venue (20)")
    args = parser.parse_args()
    result = measure(args.n, args.cold)
    print(json.dumps(result, indent=2))
    sys.exit(0 if result["met"] else 1)


if __name__ == "__main__":
    main()
