"""A local market for the demo and the tests: real Uniswap V2, WETH9, two tokens, noise.

The chain is anvil; deployment and the noise trader use anvil's unlocked dev accounts
(eth_sendTransaction), so no key is handled here. The agent itself signs with its own key.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict
from web3 import Web3
from web3.types import RPCEndpoint, TxParams, Wei

from defiagent.devchain import artifacts
from defiagent.devchain.deploy import (
    MAX_UINT,
    UniswapV2Deployment,
    add_liquidity,
    contract,
    create_pool,
    deploy_uniswap_v2,
)
from defiagent.errors import InfraError
from defiagent.types import Address

UNIT = 10**18


class DemoMarket(BaseModel):
    """The deployment plus the WETH/DUSD pool that prices ETH."""

    model_config = ConfigDict(frozen=True)

    dex: UniswapV2Deployment
    weth_pair: Address

    @property
    def dusd(self) -> str:
        return self.dex.token_a

    @property
    def dtkn(self) -> str:
        return self.dex.token_b

    @property
    def pools(self) -> list[str]:
        assert self.dex.pair is not None  # deploy_market made the pool
        return [self.dex.pair, self.weth_pair]


def _wait(w3: Web3, tx_hash) -> None:
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
    if receipt["status"] != 1:
        raise InfraError("a set-up transaction reverted on the local chain")


def deploy_market(
    w3: Web3,
    *,
    dusd_liquidity: int = 1_000_000 * UNIT,
    dtkn_liquidity: int = 2_000_000 * UNIT,
    weth_liquidity: int = 100 * UNIT,
    eth_price: int = 2_000,
) -> DemoMarket:
    """Uniswap V2 + DUSD/DTKN pool (1 DTKN = 0.5 DUSD) + WETH/DUSD pool (1 ETH = eth_price)."""
    return pool_market(
        w3,
        deploy_uniswap_v2(w3),
        dusd_liquidity=dusd_liquidity,
        dtkn_liquidity=dtkn_liquidity,
        weth_liquidity=weth_liquidity,
        eth_price=eth_price,
    )


def pool_market(
    w3: Web3,
    dex: UniswapV2Deployment,
    *,
    dusd_liquidity: int = 1_000_000 * UNIT,
    dtkn_liquidity: int = 2_000_000 * UNIT,
    weth_liquidity: int = 100 * UNIT,
    eth_price: int = 2_000,
) -> DemoMarket:
    """The demo's two pools on a deployed Uniswap V2 (token_a = DUSD, token_b = DTKN), with
    the deployer's tokens and ETH (`defiagent devnet up` deploys through the registry)."""
    dex = create_pool(w3, dex, dusd_liquidity, dtkn_liquidity)
    weth = contract(w3, artifacts.weth9(), dex.weth)
    deposit: TxParams = {"from": dex.deployer, "value": Wei(weth_liquidity)}
    _wait(w3, weth.functions.deposit().transact(deposit))
    pair = add_liquidity(w3, dex, dex.weth, dex.token_a, weth_liquidity, weth_liquidity * eth_price)
    return DemoMarket(dex=dex, weth_pair=pair)


def fund(w3: Web3, market: DemoMarket, to: str, *, eth: int, dusd: int = 0, dtkn: int = 0) -> None:
    d = market.dex
    _wait(w3, w3.eth.send_transaction({"from": d.deployer, "to": to, "value": Wei(eth)}))
    for token, amount in ((d.token_a, dusd), (d.token_b, dtkn)):
        if amount:
            erc20 = contract(w3, artifacts.demo_token(), token)
            _wait(w3, erc20.functions.transfer(to, amount).transact({"from": d.deployer}))


class MarketNoise:
    """Other traders: one random swap per step on the DUSD/DTKN pool, after `block_time`.

    The walk leans back toward the opening price (the further away, the likelier a trade
    back), as arbitrage against other venues would pull a real pool: a pure random walk
    drifts past the price-sanity bound within a few steps, and the demo would end with
    every strategy paused by its own noise."""

    def __init__(
        self,
        w3: Web3,
        market: DemoMarket,
        *,
        seed: int = 7,
        min_pct: float = 0.3,
        max_pct: float = 1.2,
        block_time: int = 12,
    ) -> None:
        self.w3 = w3
        self.m = market
        self.rng = random.Random(seed)  # noqa: S311 - simulated market noise, not security
        self.min_pct, self.max_pct = min_pct, max_pct
        self.block_time = block_time
        accounts: Sequence[str] = w3.eth.accounts  # web3 types it as a 1-tuple
        self.trader = Web3.to_checksum_address(accounts[1])
        d = market.dex
        fund(w3, market, self.trader, eth=UNIT, dusd=200_000 * UNIT, dtkn=400_000 * UNIT)
        for token in (d.token_a, d.token_b):
            erc20 = contract(w3, artifacts.demo_token(), token)
            _wait(w3, erc20.functions.approve(d.router, MAX_UINT).transact({"from": self.trader}))
        self.router = contract(w3, artifacts.uniswap_v2_router02(), d.router)
        assert d.pair is not None  # deploy_market made the pool
        self.pair = contract(w3, artifacts.uniswap_v2_pair(), d.pair)
        self.anchor = self._price()

    def _price(self) -> float:
        """DUSD per DTKN in the pool now."""
        d = self.m.dex
        r0, r1, _ = self.pair.functions.getReserves().call()
        dusd_first = self.pair.functions.token0().call() == d.token_a
        dusd, dtkn = (r0, r1) if dusd_first else (r1, r0)
        return dusd / dtkn if dtkn else 0.0

    def advance(self, seconds: int | None = None) -> None:
        self.w3.provider.make_request(RPCEndpoint("evm_increaseTime"), [seconds or self.block_time])
        self.w3.provider.make_request(RPCEndpoint("evm_mine"), [])

    def step(self) -> str:
        """Advance time by one block time and make one random swap; returns what it did."""
        d = self.m.dex
        self.w3.provider.make_request(RPCEndpoint("evm_increaseTime"), [self.block_time])
        r0, r1, _ = self.pair.functions.getReserves().call()
        token0 = self.pair.functions.token0().call()
        reserves = {token0: r0, (d.token_b if token0 == d.token_a else d.token_a): r1}
        # DTKN rich against the opening price: sell it more often (and the other way).
        lean = max(-0.45, min(0.45, (self._price() / self.anchor - 1) * 20)) if self.anchor else 0
        sell_dtkn = self.rng.random() < 0.5 + lean
        token_in, token_out = (d.token_b, d.token_a) if sell_dtkn else (d.token_a, d.token_b)
        pct = self.rng.uniform(self.min_pct, self.max_pct)
        amount = int(reserves[token_in] * pct / 100)
        _wait(
            self.w3,
            self.router.functions.swapExactTokensForTokens(
                amount, 0, [token_in, token_out], self.trader, int(time.time()) + 10**6
            ).transact({"from": self.trader}),
        )
        return f"{'sold' if sell_dtkn else 'bought'} DTKN ({pct:.2f}% of the pool)"
