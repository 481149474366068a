"""Uniswap V2 as a protocol: swaps and liquidity on Router02, pairs, quotes, TWAP, devnet."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from defiagent.allowlist.models import ConstraintKind, Role
from defiagent.market.models import MarketSnapshot, PoolState
from defiagent.protocols.base import (
    ContractScope,
    DevnetContract,
    DevnetDeployment,
    PlanContext,
    ProtocolAdapter,
    ProtocolAddresses,
    ProtocolPlanner,
    QuoteRequest,
    RoundTripRequest,
)
from defiagent.protocols.scopes import fn
from defiagent.protocols.uniswap_v2.functions import (
    ADD_LIQUIDITY,
    PAIR_APPROVE,
    REMOVE_LIQUIDITY,
    SWAP_EXACT_IN,
    SWAP_EXACT_IN_FOT,
    SWAP_EXACT_OUT,
)
from defiagent.protocols.uniswap_v2.intents import AddLiquidity, RemoveLiquidity
from defiagent.protocols.uniswap_v2.planner import NAME, UniswapV2Planner

if TYPE_CHECKING:
    from web3 import Web3

    from defiagent.config import MarketConfig
    from defiagent.market.reader import ChainReader
    from defiagent.market.references import ReferenceSource
    from defiagent.simulation.round_trip import RoundTrip
    from defiagent.simulation.simulator import Simulator

SELF = ConstraintKind.EQUALS_SELF
TOKENS = ConstraintKind.IN_TOKEN_ALLOWLIST
LISTED = ConstraintKind.IN_ALLOWLIST


class UniswapV2(ProtocolAdapter):
    name = NAME
    title = "Uniswap V2"
    kinds = frozenset({"swap-exact-in", "swap-exact-out", "add-liquidity", "remove-liquidity"})
    intent_models = (AddLiquidity, RemoveLiquidity)

    def planner(self, ctx: PlanContext) -> ProtocolPlanner:
        return UniswapV2Planner(ctx)

    def scopes(self) -> Sequence[ContractScope]:
        return (
            ContractScope(
                kind="router",
                role=Role.ROUTER,
                functions=(
                    fn(SWAP_EXACT_IN, ("to", SELF), ("path", TOKENS)),
                    # Its twin for fee-on-transfer tokens: the same constraints and roles.
                    fn(SWAP_EXACT_IN_FOT, ("to", SELF), ("path", TOKENS)),
                    fn(SWAP_EXACT_OUT, ("to", SELF), ("path", TOKENS)),
                    fn(ADD_LIQUIDITY, ("to", SELF), ("tokenA", TOKENS), ("tokenB", TOKENS)),
                    fn(REMOVE_LIQUIDITY, ("to", SELF), ("tokenA", TOKENS), ("tokenB", TOKENS)),
                ),
                npm_source="uniswap-v2-router02",
            ),
            ContractScope(
                kind="pair",
                role=Role.POOL,
                functions=(fn(PAIR_APPROVE, ("spender", LISTED)),),
                npm_source="uniswap-v2-pair",
            ),
            ContractScope(
                kind="factory", role=Role.FACTORY, functions=(), npm_source="uniswap-v2-factory"
            ),
        )

    def contracts(self, addresses: ProtocolAddresses) -> Mapping[str, str]:
        return {"protocols.router": addresses.router}

    def spenders(self, addresses: ProtocolAddresses) -> Sequence[str]:
        return (addresses.router,)

    def quote(self, request: QuoteRequest, market: MarketSnapshot) -> int | None:
        # Constant-product math over the snapshot's pairs, exactly as UniswapV2Library does.
        if request.fees is not None or request.amount <= 0:
            return None
        path = list(request.path)
        if request.exact == "in":
            return market.quote_out(path, request.amount)
        return market.quote_in(path, request.amount)

    def round_trip(self, simulator: Simulator, request: RoundTripRequest) -> RoundTrip | None:
        # Buy, then sell back through Router02 (or remove the liquidity added), judged by
        # exact constant-product math from the reserves at the block.
        from defiagent.simulation.round_trip import probe_v2_plan

        return probe_v2_plan(simulator, request)

    def price_references(self, market: MarketConfig) -> Sequence[ReferenceSource]:
        from defiagent.protocols.uniswap_v2.twap import TwapReference

        if "twap" not in market.references:
            return ()
        return (
            TwapReference(
                min_window_seconds=market.twap_min_window_seconds,
                max_window_seconds=market.twap_max_window_seconds,
                max_age_seconds=market.max_reference_age_seconds,
            ),
        )

    def read_pool(self, reader: ChainReader, address: str) -> PoolState | None:
        return reader.pool(address)

    def devnet_traders(
        self, w3: Web3, deployed: Mapping[str, DevnetDeployment]
    ) -> Sequence[tuple[str, Callable[[], str]]]:
        # `devnet up` pools DUSD/DTKN and WETH/DUSD after the registry's deployments and
        # records that market under extra["market"]; the demo's noise trades its DUSD/DTKN.
        from defiagent.agent.devnet import DemoMarket, MarketNoise

        v2 = deployed.get(self.name)
        if v2 is None or "market" not in v2.extra:
            return ()
        market = DemoMarket.model_validate(v2.extra["market"])
        # Real time passes between the rounds: no extra clock jump (block_time 0).
        return (("uniswap-v2 DUSD/DTKN", MarketNoise(w3, market, block_time=0).step),)

    def deploy_devnet(
        self, w3: Web3, deployer: str, deployed: Mapping[str, DevnetDeployment]
    ) -> DevnetDeployment:
        from defiagent.devchain import artifacts
        from defiagent.devchain.deploy import deploy

        weth = deployed["weth"].settings["weth"]  # the registry lists weth before this
        factory = deploy(w3, artifacts.uniswap_v2_factory(), deployer, sender=deployer)
        router = deploy(w3, artifacts.uniswap_v2_router02(), factory.address, weth, sender=deployer)
        return DevnetDeployment(
            protocol=self.name,
            contracts=[
                DevnetContract(address=factory.address, name="UniswapV2Factory", scope="factory"),
                DevnetContract(address=router.address, name="UniswapV2Router02", scope="router"),
            ],
            settings={"router": router.address, "factory": factory.address},
        )
