"""Uniswap V3 as a protocol: SwapRouter swaps (exact in/out, one hop or several, fee tiers),
QuoterV2 quotes read on the fork for the slippage bound, the pools' observe() TWAP as their
price reference, and a devnet deployment from the npm bytecode."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from defiagent.allowlist.models import Role
from defiagent.errors import DefiagentError
from defiagent.market.models import MarketSnapshot, PriceCheck, TokenInfo
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
from defiagent.protocols.uniswap_v3.functions import router_functions
from defiagent.protocols.uniswap_v3.planner import NAME, UniswapV3Planner, UniswapV3Settings

if TYPE_CHECKING:
    from web3 import Web3

    from defiagent.market.sanity import PriceSanityLimits
    from defiagent.simulation.round_trip import RoundTrip
    from defiagent.simulation.simulator import Simulator


# @uniswap/v3-core 1.0.1 and v3-periphery 1.4.4 publish the factory's, pools', SwapRouter's
# and QuoterV2's bytecode but only the interfaces and libraries of their sources.
NO_SOURCES = "npm's @uniswap/v3-core and v3-periphery ship their bytecode without its sources"


class UniswapV3(ProtocolAdapter):
    name = NAME
    title = "Uniswap V3"
    kinds = frozenset({"swap-exact-in", "swap-exact-out"})
    Settings = UniswapV3Settings

    def planner(self, ctx: PlanContext) -> ProtocolPlanner:
        # The [protocols.uniswap-v3] table is read when a V3 swap is planned: an agent
        # that trades no V3 needs none.
        return UniswapV3Planner(ctx)

    def scopes(self) -> Sequence[ContractScope]:
        return (
            ContractScope(
                kind="router",
                role=Role.ROUTER,
                functions=router_functions(),
                no_sources=NO_SOURCES,
            ),
            # Called by eth_call only (never in a transaction), but pinned on the allowlist
            # like the factory: its answers are what the slippage bound trusts.
            ContractScope(kind="quoter", role=Role.ORACLE, functions=(), no_sources=NO_SOURCES),
            ContractScope(kind="factory", role=Role.FACTORY, functions=(), no_sources=NO_SOURCES),
            # Its pools: swaps touch them (the simulation's touched-contract check).
            ContractScope(kind="pool", role=Role.POOL, functions=(), no_sources=NO_SOURCES),
        )

    def _settings(self, addresses: ProtocolAddresses) -> UniswapV3Settings | None:
        settings = self.settings(addresses)
        return settings if isinstance(settings, UniswapV3Settings) else None

    def contracts(self, addresses: ProtocolAddresses) -> Mapping[str, str]:
        s = self._settings(addresses)
        if s is None:
            return {}
        return {f"protocols.{NAME}.router": s.router, f"protocols.{NAME}.quoter": s.quoter}

    def spenders(self, addresses: ProtocolAddresses) -> Sequence[str]:
        s = self._settings(addresses)
        return (s.router,) if s is not None else ()

    def quote(self, request: QuoteRequest, market: MarketSnapshot) -> int | None:
        """QuoterV2's answer for exactly this swap, read on the fork before the guard ran.

        No fee tiers (not a V3 route) or no such answer: None, and the swap is refused."""
        if request.fees is None or request.amount <= 0:
            return None
        return market.swap_quote(
            self.name, request.exact, request.path, request.fees, request.amount
        )

    def prequote(
        self,
        requests: Sequence[QuoteRequest],
        w3: Web3,
        block: int,
        addresses: ProtocolAddresses,
    ) -> Mapping[QuoteRequest, int]:
        from defiagent.protocols.uniswap_v3.quoter import (
            Web3Caller,
            quote_exact_in,
            quote_exact_out,
        )

        s = self._settings(addresses)
        if s is None:
            return {}
        rpc, at = Web3Caller(w3), hex(block)
        out: dict[QuoteRequest, int] = {}
        for r in requests:
            if r.fees is None or r.amount <= 0:
                continue
            try:
                if r.exact == "in":
                    q = quote_exact_in(rpc, s.quoter, r.path, r.fees, r.amount, block=at)
                    out[r] = q.amount_out
                else:
                    q = quote_exact_out(rpc, s.quoter, r.path, r.fees, r.amount, block=at)
                    out[r] = q.amount_in
            except DefiagentError:
                continue  # no pool, no liquidity: left out, so the guard refuses the swap
        return out

    def round_trip(self, simulator: Simulator, request: RoundTripRequest) -> RoundTrip | None:
        """Buy, then exactInput back along the reverse path through the SwapRouter, judged
        against QuoterV2's quote of that sale after the buy (uniswap_v3/round_trip.py)."""
        from defiagent.protocols.uniswap_v3.round_trip import probe_plan

        addresses = request.addresses
        return probe_plan(
            simulator, request, self._settings(addresses) if addresses is not None else None
        )

    def own_pools(self, addresses: ProtocolAddresses) -> Sequence[str]:
        s = self._settings(addresses)
        return list(s.pools) if s is not None else []

    def price_checks(
        self,
        w3: Web3,
        addresses: ProtocolAddresses,
        tokens: Mapping[str, TokenInfo],
        *,
        block: int,
        now: int,
        limits: PriceSanityLimits,
    ) -> Sequence[PriceCheck]:
        """Each listed pool's spot (slot0) against its observe() TWAP, at `block`."""
        from defiagent.protocols.uniswap_v3.prices import pool_price_check
        from defiagent.protocols.uniswap_v3.quoter import Web3Caller

        s = self._settings(addresses)
        if s is None:
            return ()
        rpc = Web3Caller(w3)
        return [
            pool_price_check(
                rpc,
                pool,
                tokens,
                now=now,
                window_seconds=s.twap_window_seconds,
                limits=limits,
                block=hex(block),
            )
            for pool in s.pools
        ]

    def deploy_devnet(
        self, w3: Web3, deployer: str, deployed: Mapping[str, DevnetDeployment]
    ) -> DevnetDeployment | None:
        from defiagent.protocols.uniswap_v3.devnet import deploy_demo_v3

        weth = deployed["weth"].settings.get("weth") if "weth" in deployed else None
        tokens = next(
            (d.extra for d in deployed.values() if "token_a" in d.extra and "token_b" in d.extra),
            None,
        )
        if weth is None or tokens is None:
            return None  # nothing to pool against
        d = deploy_demo_v3(
            w3, weth=weth, dusd=tokens["token_a"], dtkn=tokens["token_b"], deployer=deployer
        )
        symbols = tokens.get("tokens") or {}  # symbol -> address, when the deployer says
        names = {address: symbol for symbol, address in symbols.items()} | {weth: "WETH"}
        return DevnetDeployment(
            protocol=self.name,
            contracts=[
                DevnetContract(address=d.factory, name="UniswapV3Factory", scope="factory"),
                DevnetContract(address=d.router, name="SwapRouter", scope="router"),
                DevnetContract(address=d.quoter, name="QuoterV2", scope="quoter"),
                *(
                    DevnetContract(
                        address=p.address,
                        name=f"UniswapV3Pool {names.get(p.token0, p.token0[:8])}/"
                        f"{names.get(p.token1, p.token1[:8])} fee {p.fee}",
                        scope="pool",
                    )
                    for p in d.pools
                ),
            ],
            settings=d.settings(),
            extra=d.model_dump(mode="json"),
        )

    def devnet_traders(
        self, w3: Web3, deployed: Mapping[str, DevnetDeployment]
    ) -> Sequence[tuple[str, Callable[[], str]]]:
        from defiagent.protocols.uniswap_v3.devnet_traders import traders

        return traders(w3, deployed)
