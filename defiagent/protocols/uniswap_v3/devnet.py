"""Deploy the real Uniswap V3 stack on a local chain beside an existing WETH9 and tokens.

UniswapV3Factory, SwapRouter, QuoterV2 and NonfungiblePositionManager from their npm
artifacts (SwapRouter and QuoterV2 find pools by the pool's init-code hash, which the npm
UniswapV3Pool matches); pools created and initialised through the position manager at the
given fee tiers, with full-range liquidity at the price the two amounts make, and room for
an observation history so `observe()` can answer a TWAP. Like the V2 deployment
(defiagent/devchain/deploy.py), it uses anvil's unlocked dev accounts (eth_sendTransaction):
no key is handled.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from web3 import Web3
from web3.types import TxParams, Wei

from defiagent.devchain import artifacts as v2_artifacts
from defiagent.devchain.deploy import _wait, contract, deploy
from defiagent.errors import ConfigError
from defiagent.protocols.uniswap_v3 import artifacts
from defiagent.protocols.uniswap_v3.pool_math import FEE_TIERS, full_range, sqrt_price_x96
from defiagent.types import Address

UNIT = 10**18
# Slots of observation history per pool: at least one observation older than the TWAP
# window must survive the swaps made inside it, or observe() reverts ("OLD").
OBSERVATION_SLOTS = 64


class PoolSpec(BaseModel):
    """A pool to create: two tokens, a fee tier, and the amounts whose ratio is its price."""

    model_config = ConfigDict(frozen=True)

    token_x: Address
    token_y: Address
    fee: int
    amount_x: int = Field(gt=0)
    amount_y: int = Field(gt=0)


class V3Pool(BaseModel):
    model_config = ConfigDict(frozen=True)

    address: Address
    token0: Address
    token1: Address
    fee: int
    tick_spacing: int

    def has(self, token: str) -> bool:
        return token in (self.token0, self.token1)


class UniswapV3Deployment(BaseModel):
    model_config = ConfigDict(frozen=True)

    chain_id: int
    deployer: Address
    factory: Address
    router: Address  # SwapRouter
    quoter: Address  # QuoterV2
    position_manager: Address  # NonfungiblePositionManager
    weth: Address
    pools: list[V3Pool] = []

    def settings(self) -> dict[str, Any]:
        """Its [protocols.uniswap-v3] table of agent.toml."""
        return {
            "router": self.router,
            "quoter": self.quoter,
            "factory": self.factory,
            "position_manager": self.position_manager,
            "pools": [p.address for p in self.pools],
        }

    def pool(self, token_x: str, token_y: str, fee: int) -> V3Pool | None:
        for p in self.pools:
            if p.fee == fee and p.has(token_x) and p.has(token_y) and token_x != token_y:
                return p
        return None


def deploy_uniswap_v3(
    w3: Web3,
    *,
    weth: str,
    pools: Sequence[PoolSpec] = (),
    deployer: str | None = None,
) -> UniswapV3Deployment:
    """The factory, SwapRouter, QuoterV2 and position manager on `weth`; then `pools`.

    The deployer must hold the pools' tokens (WETH is wrapped from its ETH as needed).
    The position manager's token descriptor (tokenURI only) is left at the zero address.
    """
    sender = Web3.to_checksum_address(deployer or w3.eth.accounts[0])
    weth = Web3.to_checksum_address(weth)
    factory = deploy(w3, artifacts.factory(), sender=sender)
    router = deploy(w3, artifacts.swap_router(), factory.address, weth, sender=sender)
    quoter = deploy(w3, artifacts.quoter_v2(), factory.address, weth, sender=sender)
    manager = deploy(
        w3, artifacts.position_manager(), factory.address, weth, "0x" + "00" * 20, sender=sender
    )
    d = UniswapV3Deployment(
        chain_id=w3.eth.chain_id,
        deployer=sender,
        factory=factory.address,
        router=router.address,
        quoter=quoter.address,
        position_manager=manager.address,
        weth=weth,
    )
    for spec in pools:
        d = add_pool(w3, d, spec)
    return d


def add_pool(
    w3: Web3, d: UniswapV3Deployment, spec: PoolSpec, *, sender: str | None = None
) -> UniswapV3Deployment:
    """Create and initialise the pool at the specs' price, and mint full-range liquidity."""
    if spec.fee not in FEE_TIERS:
        raise ConfigError(
            f"fee {spec.fee} is not a Uniswap V3 fee tier ({', '.join(map(str, FEE_TIERS))})"
        )
    sender = Web3.to_checksum_address(sender or d.deployer)
    x, y = Web3.to_checksum_address(spec.token_x), Web3.to_checksum_address(spec.token_y)
    if int(x, 16) < int(y, 16):
        (token0, amount0), (token1, amount1) = (x, spec.amount_x), (y, spec.amount_y)
    else:
        (token0, amount0), (token1, amount1) = (y, spec.amount_y), (x, spec.amount_x)
    manager = contract(w3, artifacts.position_manager(), d.position_manager)
    tx: TxParams = {"from": sender}
    _wait(
        w3,
        manager.functions.createAndInitializePoolIfNecessary(
            token0, token1, spec.fee, sqrt_price_x96(amount0, amount1)
        ).transact(tx),
    )
    factory = contract(w3, artifacts.factory(), d.factory)
    address = factory.functions.getPool(token0, token1, spec.fee).call()
    pool = contract(w3, artifacts.pool(), address)
    _wait(w3, pool.functions.increaseObservationCardinalityNext(OBSERVATION_SLOTS).transact(tx))
    for token, amount in ((token0, amount0), (token1, amount1)):
        _provide(w3, d, token, amount, sender)
    lower, upper = full_range(spec.fee)
    _wait(
        w3,
        manager.functions.mint(
            (
                token0,
                token1,
                spec.fee,
                lower,
                upper,
                amount0,
                amount1,
                0,
                0,
                sender,
                int(time.time()) + 3600,
            )
        ).transact(tx),
    )
    entry = V3Pool(
        address=address,
        token0=token0,
        token1=token1,
        fee=spec.fee,
        tick_spacing=FEE_TIERS[spec.fee],
    )
    return d.model_copy(update={"pools": [*d.pools, entry]})


def _provide(w3: Web3, d: UniswapV3Deployment, token: str, amount: int, sender: str) -> None:
    """Approve the position manager for `amount` of `token`, wrapping ETH first for WETH."""
    erc20 = contract(w3, v2_artifacts.demo_token(), token)
    if token == d.weth:
        weth = contract(w3, v2_artifacts.weth9(), d.weth)
        short = amount - weth.functions.balanceOf(sender).call()
        if short > 0:
            deposit: TxParams = {"from": sender, "value": Wei(short)}
            _wait(w3, weth.functions.deposit().transact(deposit))
    _wait(w3, erc20.functions.approve(d.position_manager, amount).transact({"from": sender}))


def demo_pools(
    *,
    weth: str,
    dusd: str,
    dtkn: str,
    eth_price: int = 2_000,
    dusd_liquidity: int = 1_000_000 * UNIT,
    weth_liquidity: int = 100 * UNIT,
) -> list[PoolSpec]:
    """The demo's V3 market, at the V2 demo's prices (1 DTKN = 0.5 DUSD, 1 ETH = eth_price):
    DUSD/DTKN at 0.05% and 0.3%, and WETH/DUSD at 0.3%, so WETH -> DUSD -> DTKN is a
    two-hop path."""
    return [
        PoolSpec(
            token_x=dusd,
            token_y=dtkn,
            fee=500,
            amount_x=dusd_liquidity,
            amount_y=2 * dusd_liquidity,
        ),
        PoolSpec(
            token_x=dusd,
            token_y=dtkn,
            fee=3000,
            amount_x=dusd_liquidity // 2,
            amount_y=dusd_liquidity,
        ),
        PoolSpec(
            token_x=weth,
            token_y=dusd,
            fee=3000,
            amount_x=weth_liquidity,
            amount_y=weth_liquidity * eth_price,
        ),
    ]


def deploy_demo_v3(
    w3: Web3,
    *,
    weth: str,
    dusd: str,
    dtkn: str,
    deployer: str | None = None,
    eth_price: int = 2_000,
) -> UniswapV3Deployment:
    """What `defiagent devnet up` and the demo call: V3 beside the V2 demo's WETH and tokens."""
    return deploy_uniswap_v3(
        w3,
        weth=weth,
        pools=demo_pools(weth=weth, dusd=dusd, dtkn=dtkn, eth_price=eth_price),
        deployer=deployer,
    )
