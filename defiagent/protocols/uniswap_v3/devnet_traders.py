"""The devnet's Uniswap V3 trader (`defiagent devnet up`): one exactInputSingle per round
on a random V3 pool through the SwapRouter, from anvil's dev account 2 (unlocked: no key
handled here). A random size, and a direction that leans back toward the pool's opening
price, as arbitrage against other venues would pull it."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from web3 import Web3
from web3.types import TxParams, Wei

from defiagent.devchain import artifacts
from defiagent.devchain.deploy import MAX_UINT, _wait, contract
from defiagent.protocols.base import DevnetDeployment
from defiagent.protocols.uniswap_v3 import artifacts as v3_artifacts

UNIT = 10**18


def traders(
    w3: Web3, deployed: Mapping[str, DevnetDeployment]
) -> Sequence[tuple[str, Callable[[], str]]]:
    """What `UniswapV3.devnet_traders` returns: one trader over every V3 pool deployed."""
    v3 = deployed.get("uniswap-v3")
    if v3 is None or not v3.extra.get("pools"):
        return ()
    tokens = next((d.extra for d in deployed.values() if "token_a" in d.extra), {})
    return (("uniswap-v3", V3Noise(w3, v3.extra, tokens).step),)


class V3Noise:
    def __init__(
        self,
        w3: Web3,
        v3: dict[str, Any],
        tokens: dict[str, Any],
        *,
        seed: int = 11,
        min_pct: float = 0.2,
        max_pct: float = 1.0,
    ) -> None:
        self.w3 = w3
        self.rng = random.Random(seed)  # noqa: S311 - simulated market noise, not security
        self.min_pct, self.max_pct = min_pct, max_pct
        accounts = list(w3.eth.accounts)
        deployer, self.trader = accounts[0], Web3.to_checksum_address(accounts[2])
        self.router = contract(w3, v3_artifacts.swap_router(), v3["router"])
        self.pools = [
            (p, contract(w3, v3_artifacts.pool(), p["address"])) for p in v3.get("pools", [])
        ]
        pooled = {t for p, _ in self.pools for t in (p["token0"], p["token1"])}
        weth = v3["weth"]
        if weth in pooled:  # WETH from the trader's own dev ETH
            deposit: TxParams = {"from": self.trader, "value": Wei(100 * UNIT)}
            _wait(w3, contract(w3, artifacts.weth9(), weth).functions.deposit().transact(deposit))
        for token in sorted(pooled - {weth}):  # the rest from the deployer, who minted them
            erc20 = contract(w3, artifacts.demo_token(), token)
            send = erc20.functions.transfer(self.trader, 400_000 * UNIT)
            _wait(w3, send.transact({"from": deployer}))
        for token in sorted(pooled):
            erc20 = contract(w3, artifacts.demo_token(), token)
            approve = erc20.functions.approve(self.router.address, MAX_UINT)
            _wait(w3, approve.transact({"from": self.trader}))
        self.anchors = [self._price(pool) for _, pool in self.pools]
        symbols = {a: sym for sym, a in tokens.get("tokens", {}).items()}
        self.symbols = symbols | {weth: "WETH"}

    @staticmethod
    def _price(pool) -> float:
        """token1 per token0 in the pool now (raw units)."""
        sqrt_price = pool.functions.slot0().call()[0]
        return float((sqrt_price / 2**96) ** 2)

    def step(self) -> str:
        i = self.rng.randrange(len(self.pools))
        info, pool = self.pools[i]
        token0, token1 = info["token0"], info["token1"]
        anchor = self.anchors[i]
        # token0 dear against the opening price: sell it more often (and the other way).
        lean = max(-0.45, min(0.45, (self._price(pool) / anchor - 1) * 20)) if anchor else 0
        sell0 = self.rng.random() < 0.5 + lean
        token_in, token_out = (token0, token1) if sell0 else (token1, token0)
        depth = contract(self.w3, artifacts.demo_token(), token_in)
        pct = self.rng.uniform(self.min_pct, self.max_pct)
        amount = int(depth.functions.balanceOf(pool.address).call() * pct / 100)
        deadline = int(time.time()) + 600
        params = (token_in, token_out, info["fee"], self.trader, deadline, amount, 0, 0)
        swap = self.router.functions.exactInputSingle(params)
        _wait(self.w3, swap.transact({"from": self.trader}))
        sold, bought = (self.symbols.get(t, t[:8]) for t in (token_in, token_out))
        return f"sold {sold} for {bought} at fee {info['fee']} ({pct:.2f}% of the pool)"
