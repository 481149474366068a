"""The backtest's fills, cross-checked against the real Uniswap V2 bytecode on anvil.

The history is recorded from a local chain; at its last tick (the chain's state now) the
engine plans and fills a sample of intents by exact integer math, then the very same
calls are sent on anvil from the backtest's agent address: every balance change must be
identical to the wei, the pool's reserves after too, and the engine's gas figures within
15% of the gas the chain used."""

from __future__ import annotations

import pytest
from web3 import Web3

from defiagent.agent.devnet import UNIT, deploy_market, fund
from defiagent.backtest.engine import BACKTEST_AGENT, BacktestEngine, _Book
from defiagent.chain.anvil import Anvil
from defiagent.market.history import record
from defiagent.market.reader import ChainReader
from defiagent.strategy.intents import SwapExactIn, SwapExactOut, Unwrap, Wrap
from tests.backtest.support_engine import backtest_config, make_history, market_allowlist

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("backtest-fills-chain")]


def _intents(m):
    dusd, dtkn, weth = m.dusd, m.dtkn, m.dex.weth
    return [
        ("buy DTKN exact in", SwapExactIn(token_in=dusd, token_out=dtkn, amount_in=750 * UNIT, min_amount_out=1)),
        ("sell DTKN exact in", SwapExactIn(token_in=dtkn, token_out=dusd, amount_in=3_000 * UNIT, min_amount_out=1)),
        ("buy DUSD exact out", SwapExactOut(token_in=dtkn, token_out=dusd, amount_out=400 * UNIT, max_amount_in=10_000 * UNIT)),
        ("wrap", Wrap(amount=UNIT // 2)),
        ("sell WETH exact in", SwapExactIn(token_in=weth, token_out=dusd, amount_in=UNIT // 4, min_amount_out=1)),
        ("unwrap", Unwrap(amount=UNIT // 8)),
    ]  # fmt: skip


def test_fills_match_the_chain_to_the_wei(tmp_path):
    with Anvil(log_dir=tmp_path / "anvil") as node:
        w3 = Web3(Web3.HTTPProvider(node.url))
        m = deploy_market(w3)
        first, _last = make_history(w3, m, 12, seed=3)
        fund(w3, m, BACKTEST_AGENT, eth=5 * UNIT, dusd=10_000 * UNIT, dtkn=20_000 * UNIT)
        w3.provider.make_request("anvil_impersonateAccount", [BACKTEST_AGENT])
        head = w3.eth.block_number
        history = record(node.url, m.pools, first, head, tmp_path / "h")
        cfg = backtest_config(m, node.url, tmp_path)
        engine = BacktestEngine(cfg, history, cfg.strategies[0], allowlist=market_allowlist(w3, m))
        i = len(history) - 1  # the chain's state now is the last tick's
        reader = ChainReader(w3)
        tokens = [m.dusd, m.dtkn, m.dex.weth]

        def chain_book() -> _Book:
            return _Book(
                eth=w3.eth.get_balance(BACKTEST_AGENT),
                balances={t: reader.balance_of(t, BACKTEST_AGENT) for t in tokens},
                allowances={
                    f"{t}:{m.dex.router}": reader.allowance(t, BACKTEST_AGENT, m.dex.router)
                    for t in tokens
                },
            )

        for label, intent in _intents(m):
            engine.book = chain_book()
            engine._moved = {}
            # The chain's pools as they are now (earlier samples moved them).
            for address, series in history.pools.items():
                now = reader.pool(address)
                engine._moved[address] = series.state(i).model_copy(
                    update={"reserve0": now.reserve0, "reserve1": now.reserve1}
                )
            market, portfolio, _, _, _ = engine._observe(i)
            calls = engine.planner.plan(intent, market, portfolio)
            before = engine.book
            after, moved, gas, _ = engine._fill(calls, market, before, i)

            used = paid = 0
            for call in calls:
                tx = w3.eth.send_transaction(
                    {"from": BACKTEST_AGENT, "to": call.target, "data": call.data,
                     "value": call.value}
                )  # fmt: skip
                receipt = w3.eth.wait_for_transaction_receipt(tx)
                assert receipt["status"] == 1, label
                used += receipt["gasUsed"]
                paid += receipt["gasUsed"] * receipt["effectiveGasPrice"]
            chain = chain_book()
            for t in tokens:
                onchain = chain.balances[t] - before.balances[t]
                assert onchain == after.balances[t] - before.balances[t], (label, t)
            # ETH moved by the trade itself (wrap, unwrap), gas aside on both sides.
            engine_gas_wei = gas * (engine.h.base_fees[i] + engine.priority_fee)
            assert chain.eth - before.eth + paid == after.eth - before.eth + engine_gas_wei, label
            for address, pool in moved.items():
                onchain = reader.pool(address)
                assert (pool.reserve0, pool.reserve1) == (onchain.reserve0, onchain.reserve1), label
            assert abs(gas - used) <= 0.15 * used, f"{label}: engine gas {gas}, chain {used}"
