"""What an executed intent did, measured on chain: the TradeEvent the ledger and reports use.

Amounts come from the agent's balances before and after (not from the plan or the
simulation), gas from the receipts (gasUsed x effectiveGasPrice), values from the sane
prices read before the trade. Slippage compares what arrived with the pool's quote.
"""

from __future__ import annotations

from typing import Any

from defiagent.chain.rpc import RpcError
from defiagent.market.models import MarketSnapshot, PortfolioSnapshot
from defiagent.monitoring.events import TradeEvent
from defiagent.simulation.batch import BatchRpcClient

ETH = "ETH"


def gas_paid(rpc: BatchRpcClient, tx_hashes: list[str]) -> tuple[int, int]:
    """(gas used, wei paid) by these transactions; unreadable receipts count as unknown (0)."""
    if not tx_hashes:
        return 0, 0
    try:
        receipts = rpc.batch([("eth_getTransactionReceipt", [h]) for h in tx_hashes])
    except RpcError:
        return 0, 0
    used = paid = 0
    for r in receipts:
        if isinstance(r, dict) and r.get("gasUsed") and r.get("effectiveGasPrice"):
            used += int(r["gasUsed"], 16)
            paid += int(r["gasUsed"], 16) * int(r["effectiveGasPrice"], 16)
    return used, paid


def _deltas(before: PortfolioSnapshot, after: PortfolioSnapshot, gas: int) -> dict[str, int]:
    tokens = set(before.balances) | set(after.balances)
    out = {t: after.balance(t) - before.balance(t) for t in tokens}
    out[ETH] = after.eth_balance - before.eth_balance + gas  # gas is not a trade
    return {t: d for t, d in out.items() if d}


def build_trade(
    *,
    rpc: BatchRpcClient,
    at: float,
    strategy: str,
    intent: Any,
    tx_hashes: list[str],
    market: MarketSnapshot,
    before: PortfolioSnapshot,
    after: PortfolioSnapshot,
    prices: dict[str, float],
    portfolio_value: float | None,
    exit_reason: str | None = None,
    pin: str = "",
) -> TradeEvent:
    gas_used, gas = gas_paid(rpc, tx_hashes)
    deltas = _deltas(before, after, gas)

    def value(token: str, amount: int) -> float | None:
        price = prices.get(token)
        return None if price is None else amount * price

    def biggest(items: list[tuple[str, int]]) -> tuple[str | None, int, float | None]:
        if not items:
            return None, 0, None
        values = [value(t, a) for t, a in items]
        total = None if any(v is None for v in values) else sum(v for v in values if v)
        token, amount = max(items, key=lambda ta: value(*ta) or 0.0)
        return token, amount, total

    token_in, amount_in, value_in = biggest([(t, -d) for t, d in deltas.items() if d < 0])
    token_out, amount_out, value_out = biggest([(t, d) for t, d in deltas.items() if d > 0])
    quoted = slippage = None
    pool = next(
        (
            pl
            for pl in market.pools
            if token_in and token_out and pl.has(token_in) and pl.has(token_out)
        ),
        None,
    )
    if pool is not None and getattr(intent, "kind", "") == "swap-exact-in" and amount_in:
        assert token_in is not None  # a pool was found for it
        quoted = pool.amount_out(token_in, amount_in)
        if quoted:
            slippage = (quoted - amount_out) / quoted * 10_000
    return TradeEvent(
        at=at,
        strategy=strategy,
        intent_id=intent.id,
        kind=intent.kind,
        pin=pin,
        exit_reason=exit_reason,
        token_in=token_in,
        token_out=token_out,
        amount_in=amount_in,
        amount_out=amount_out,
        value_in=value_in,
        value_out=value_out,
        quoted_out=quoted,
        slippage_bps=slippage,
        gas_used=gas_used,
        gas_cost_wei=gas,
        gas_cost_value=value(ETH, gas) if gas else 0.0,
        portfolio_value=portfolio_value,
        tx_hashes=list(tx_hashes),
    )
