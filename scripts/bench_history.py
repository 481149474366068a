"""Per-intent guard and risk cost against the length of the agent's trade history.

What the agent does for each intent once it is planned, timed with an empty ledger and with
N past trades (spread over the months before now, as a long-lived agent has them): read
the spend window, fold the strategy's own risk figures from the trade ledger (trades in
the window, losing streak, gas paid, exposure), then run every guard and risk rule on each
call of the plan. The target: with 100,000 past trades at most 1.5 times the cost with none.

The same is timed on a ledger that scans every trade (the implementation before the time
indexes), for contrast.

    .venv/bin/python scripts/bench_history.py [--trades 100000] [--intents 2000]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from defiagent.agent.risk_desk import RiskDesk, StrategyRisk
from defiagent.agent.state import SpendLedger
from defiagent.guard.guard import Guard
from defiagent.guard.registry import build_exit_rules, build_rules
from defiagent.monitoring.events import TradeEvent
from defiagent.risk.trades import TradeLedger, moved_assets
from defiagent.strategy.intents import SwapExactIn
from tests.guard import world as w

TARGET_RATIO = 1.5
STRATEGIES = ("mean-reversion", "momentum")


class ScanningLedger(TradeLedger):
    """The ledger as it was: every read scans every trade."""

    def count(self, strategy: str, now: float, window: float) -> int:
        return sum(
            1
            for t in self.trades
            if t.strategy == strategy and now - t.at < window and moved_assets(t)
        )

    def gas_wei(self, now: float, window: float) -> int:
        return sum(t.gas_cost_wei for t in self.trades if now - t.at < window)


def past_trades(n: int, now: float) -> list[TradeEvent]:
    """`n` trades, one a minute up to an hour before `now`: buys and sells, some losing."""
    out = []
    for i in range(n):
        at = now - 3_600 - (n - i) * 60.0
        buy = i % 2 == 0
        out.append(
            TradeEvent(
                at=at,
                strategy=STRATEGIES[(i // 2) % 2],
                intent_id=f"past-{i}",
                kind="swap-exact-in",
                token_in=w.DUSD if buy else w.DTKN,
                token_out=w.DTKN if buy else w.DUSD,
                amount_in=100 * w.E18 if buy else 200 * w.E18,
                amount_out=200 * w.E18 if buy else (95 if i % 3 else 105) * w.E18,
                value_in=100.0,
                value_out=100.0 if buy else float(95 if i % 3 else 105),
                gas_used=120_000,
                gas_cost_wei=120_000 * 10**9,
            )
        )
    return out


def intent_calls() -> list[Any]:
    amount = 100 * w.E18
    min_out = w.market().quote_out([w.DUSD, w.DTKN], amount) * 995 // 1000
    intent = SwapExactIn(
        token_in=w.DUSD, token_out=w.DTKN, amount_in=amount, min_amount_out=min_out
    )
    return w.plan(intent)  # approve + swap


def per_intent_us(ledger: TradeLedger, intents: int) -> list[float]:
    """Microseconds per intent for the agent's guard + risk step (as in `Agent._handle`)."""
    guard = Guard(build_rules())
    desk = RiskDesk(
        {s: StrategyRisk(guard=guard, exits=build_exit_rules()) for s in STRATEGIES}, ledger
    )
    spend = SpendLedger(86_400)
    calls = intent_calls()
    base = w.context()
    out = []
    for i in range(intents):
        t0 = time.perf_counter()
        ctx = dataclasses.replace(base, spent_in_window=spend.spent(float(w.NOW)))
        ctx = desk.context_for(STRATEGIES[i % 2], ctx)
        for call in calls:
            guard.decide(call, ctx)
        out.append((time.perf_counter() - t0) * 1e6)
    return out


def measure(trades: int = 100_000, intents: int = 2_000) -> dict[str, Any]:
    history = past_trades(trades, float(w.NOW))
    results: dict[str, Any] = {"past_trades": trades, "intents": intents}
    for name, cls in (("indexed", TradeLedger), ("scanning", ScanningLedger)):
        empty, full = cls(numeraire=w.DUSD), cls(numeraire=w.DUSD)
        for trade in history:
            full.add(trade)
        per_intent_us(empty, 100)  # warm caches
        none = statistics.median(per_intent_us(empty, intents))
        many = statistics.median(per_intent_us(full, intents if name == "indexed" else 20))
        results[name] = {
            "p50_us_no_history": round(none, 1),
            "p50_us_with_history": round(many, 1),
            "ratio": round(many / none, 2),
        }
    results["target_ratio"] = TARGET_RATIO
    results["met"] = results["indexed"]["ratio"] <= TARGET_RATIO
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, default=100_000)
    parser.add_argument("--intents", type=int, default=2_000)
    args = parser.parse_args()
    results = measure(args.trades, args.intents)
    print(json.dumps(results, indent=2))
    sys.exit(0 if results["met"] else 1)


if __name__ == "__main__":
    main()
