"""The protocol adapter seam: what a protocol is, in one object (`ProtocolAdapter`).

The core (intent union, planner, the slippage rule's quoting, the runtime's start checks
and price sources, demo allowlist, devnet) knows protocols only through
`defiagent.protocols.registry.PROTOCOLS`. An adapter says which intent kinds
it serves and plans them into calls, which functions the agent may call on each kind of
contract it has and what their arguments mean to the guard (roles), how to quote a swap
for the slippage bound, which price references it offers, how to read its pools, and how
to deploy itself on a devnet.

How to add a protocol
---------------------
1. Make a folder `defiagent/protocols/<name>/` (a package) holding:
   - its intent models, if it brings new kinds: pydantic models subclassing
     `defiagent.strategy.intent_base.IntentBase` with a `kind: Literal[...]` field. Swaps do
     not get new kinds: `SwapExactIn` / `SwapExactOut` name the protocol in `venue`.
     Import intents from `defiagent.strategy.intent_base`, never from
     `defiagent.strategy.intents` (that module is built from the registry: a cycle).
   - a `ProtocolPlanner` subclass: intent + market + portfolio -> `PlannedCall`s. It applies
     no policy (the guard does) and raises `PlanningError` with one sentence for an intent
     it cannot carry out (unknown pool, a field that does not fit the protocol).
   - its `ContractScope`s: per kind of contract (router, pool, vault...), the
     `AllowedFunction`s a reviewer approves, each with its constraints and argument roles.
   - a `ProtocolAdapter` subclass tying these together, plus the optional hooks (quote,
     price references, pool reading, the honeypot round trip of its buys, devnet
     deployment) it supports.
2. Add one line to `PROTOCOLS` in `defiagent/protocols/registry.py`.
3. Regenerate the table of docs/protocols.md (`defiagent protocols list --markdown`) and
   document new intent kinds in docs/strategy-protocol.md (both tested).
4. Test it in `tests/protocols/` against real bytecode on anvil; `tests/protocols/
   test_registry.py` checks the core learned of it only through the registry.

Its settings, if any, are the table `[protocols.<name>]` of agent.toml, validated by its
`Settings` model. Nothing else in the core changes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from defiagent.allowlist.models import AllowedFunction, Role
from defiagent.errors import Refused
from defiagent.execution.models import PlannedCall
from defiagent.market.models import (
    MarketSnapshot,
    PoolState,
    PortfolioSnapshot,
    PriceCheck,
    TokenInfo,
)
from defiagent.types import Address

if TYPE_CHECKING:  # only for annotations: these modules reach the registry themselves
    from web3 import Web3

    from defiagent.config import MarketConfig
    from defiagent.market.reader import ChainReader
    from defiagent.market.references import ReferenceSource
    from defiagent.market.sanity import PriceSanityLimits
    from defiagent.simulation.models import SimulationOutcome
    from defiagent.simulation.round_trip import RoundTrip
    from defiagent.simulation.simulator import Simulator
    from defiagent.strategy.intent_base import IntentBase


class PlanningError(Refused):
    """The intent cannot be turned into calls (no pool, no balance): nothing is sent."""


class ProtocolAddresses(BaseModel):
    """The contracts the planners target (each must also be an active allowlist entry).

    `router` (Uniswap V2 Router02) and `weth` (WETH9) are the `[protocols]` keys of old;
    every other protocol reads its own table `[protocols.<name>]`, kept here by name and
    validated by that protocol's `Settings` (`ProtocolAdapter.settings`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    router: Address  # Uniswap V2 Router02 (or a fork with the same interface)
    weth: Address  # WETH9
    factory: Address | None = None
    sections: dict[str, dict[str, Any]] = {}  # protocol name -> its [protocols.<name>] table


@dataclass(frozen=True)
class PlanContext:
    """What every protocol planner is built with."""

    agent: str  # the address that sends (and, unless an intent says otherwise, receives)
    addresses: ProtocolAddresses
    # token (lower-case) -> the transfer fee (bps) its active allowlist entry declares:
    # fee-on-transfer tokens, which a planner must swap in their own way (or refuse).
    transfer_fees: Mapping[str, int] = field(default_factory=dict)

    def transfer_fee(self, token: str) -> int | None:
        return self.transfer_fees.get(token.lower())


class ProtocolPlanner(ABC):
    """Turns the intents of the kinds its protocol serves into calls. No I/O, no policy."""

    def __init__(self, ctx: PlanContext) -> None:
        self.ctx = ctx
        self.agent = ctx.agent

    @abstractmethod
    def plan(
        self, intent: IntentBase, market: MarketSnapshot, portfolio: PortfolioSnapshot
    ) -> list[PlannedCall]:
        """The calls that carry out `intent`, approvals first; PlanningError if none can."""


@dataclass(frozen=True)
class ContractScope:
    """The functions the agent needs on one kind of contract of a protocol.

    `kind` names it within the protocol ("router", "pair", "weth", "token"); `role` is the
    allowlist role its entries get; `functions` are what a reviewer approves, with the
    argument roles the slippage, price, deadline and recipient rules read; `npm_source`
    names the source bundle (`defiagent.vetting.npm_sources`) behind the devnet bytecode.
    `no_sources` says why a scope has none (its npm package ships the bytecode without
    the contract's sources): a devnet then reviews it on bytecode alone, under a policy
    that allows it (`[sources] when_missing = "bytecode-only"`).
    """

    kind: str
    role: Role
    functions: tuple[AllowedFunction, ...]
    npm_source: str | None = None
    no_sources: str | None = None


class QuoteRequest(BaseModel):
    """A swap to quote for the slippage bound: what is exact, the route and the amount.

    `amount` is the amount sold when `exact` is "in", the amount bought when "out"; the
    quote is the other side. `path` lists tokens, first sold, last bought; `fees` is the
    fee tier of each hop where the protocol has them (Uniswap V3), else None.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    exact: Literal["in", "out"]
    path: tuple[str, ...]
    amount: int
    fees: tuple[int, ...] | None = None


@dataclass(frozen=True)
class RoundTripRequest:
    """A buy the agent is about to send, for its protocol's round-trip (honeypot) probe."""

    intent: IntentBase  # a swap to a token that is not money, or a liquidity add
    calls: Sequence[PlannedCall]  # its plan, approvals first (the inner calls under a Safe)
    # The plan's own simulation, reused when it ran at the probe's block; None: run it anew.
    outcomes: Sequence[SimulationOutcome] | None
    agent: str  # who bought, and sells back
    router: str  # [protocols] router: Uniswap V2 Router02
    # Every protocol's contracts ([protocols.<name>] tables); None: only `router` is known.
    addresses: ProtocolAddresses | None
    limit_bps: int  # [guard.honeypot] max_round_trip_loss_bps


class DevnetContract(BaseModel):
    """One contract a devnet deployment made, as its allowlist entry will name it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: Address
    name: str  # e.g. "UniswapV2Router02"
    scope: str  # the ContractScope.kind whose functions its entry allows


class DevnetDeployment(BaseModel):
    """What a protocol's devnet hook deployed, and what agent.toml needs to use it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    protocol: str
    contracts: list[DevnetContract] = []
    settings: dict[str, Any] = {}  # keys of its [protocols.<name>] table (or [protocols])
    extra: dict[str, Any] = {}  # anything later deployments need (pools, token addresses)


class ProtocolAdapter(ABC):
    """What a protocol is. One instance per protocol, listed in the registry.

    Required: `name`, `title`, `kinds`, `planner()` and `scopes()`. The hooks with a default
    are optional: a protocol without pools reads none, one without swaps quotes none.
    """

    name: ClassVar[str]  # e.g. "uniswap-v2"; a swap intent's `venue` names it
    title: ClassVar[str]  # e.g. "Uniswap V2"
    # The intent kinds it plans. A kind whose model has a `venue` field (the swaps) may be
    # served by several protocols, one per venue; any other kind by exactly one.
    kinds: ClassVar[frozenset[str]]
    # The intent models it brings (kinds the core does not define); swaps reuse the core's.
    intent_models: ClassVar[tuple[type[IntentBase], ...]] = ()
    # Its [protocols.<name>] table, if it has one.
    Settings: ClassVar[type[BaseModel] | None] = None

    @abstractmethod
    def planner(self, ctx: PlanContext) -> ProtocolPlanner:
        """Its planner for this agent and these addresses (ConfigError if they lack some)."""

    @abstractmethod
    def scopes(self) -> Sequence[ContractScope]:
        """Its contract kinds with the functions (and argument roles) the agent may call."""

    def scope(self, kind: str) -> ContractScope:
        for s in self.scopes():
            if s.kind == kind:
                return s
        raise KeyError(f"{self.name} has no contract kind {kind!r}")

    def settings(self, addresses: ProtocolAddresses) -> BaseModel | None:
        """Its validated [protocols.<name>] table, or None when it has none / none is set."""
        raw = addresses.sections.get(self.name)
        if self.Settings is None or raw is None:
            return None
        return self.Settings.model_validate(raw)

    def contracts(self, addresses: ProtocolAddresses) -> Mapping[str, str]:
        """The contracts its planner targets, by the config key that names them (e.g.
        "protocols.router"): each must be an active allowlist entry for the agent to start."""
        return {}

    def spenders(self, addresses: ProtocolAddresses) -> Sequence[str]:
        """The contracts its plans approve, whose allowances the portfolio snapshot reads."""
        return ()

    def claims(self, function: AllowedFunction) -> bool:
        """Whether a guarded call's function is one of this protocol's (by selector)."""
        # The guard asks on every decision: the selectors are gathered once per adapter
        # (building the scopes parses every signature).
        selectors: frozenset[str] | None = self.__dict__.get("_claimed_selectors")
        if selectors is None:
            selectors = frozenset(f.selector for s in self.scopes() for f in s.functions)
            self.__dict__["_claimed_selectors"] = selectors
        return function.selector in selectors

    # --- optional hooks -----------------------------------------------------------------

    def quote(self, request: QuoteRequest, market: MarketSnapshot) -> int | None:
        """The pool's own answer to `request` (the other side's amount) from the snapshot.

        Pure: the slippage rule calls it while judging. None means it cannot quote (no
        pool on a hop, an empty pool), and the swap is refused.
        """
        return None

    def prequote(
        self,
        requests: Sequence[QuoteRequest],
        w3: Web3,
        block: int,
        addresses: ProtocolAddresses,
    ) -> Mapping[QuoteRequest, int]:
        """Quotes that need the chain (e.g. a quoter contract on the fork), read before the
        guard runs, for `quote` to find in the snapshot (`MarketSnapshot.swap_quotes`, put
        there by `defiagent.protocols.quoting.with_prequotes`). `addresses` holds the
        protocol's own table (where its quoter is). A request it cannot quote is left out
        (the swap is then refused). Most protocols need none."""
        return {}

    def round_trip(self, simulator: Simulator, request: RoundTripRequest) -> RoundTrip | None:
        """The round trip of a buy it planned (`round-trip-sellable`): on `simulator`'s fork,
        at the plan's block, the buy, then a sale of what it delivered back through its own
        contracts, judged against its own pool math (the helpers are in
        defiagent/simulation/round_trip.py). Never raises: a probe that cannot run is a
        `RoundTrip` that did not pass, with the reason. None: it has no probe, and a buy it
        plans is refused."""
        return None

    def price_references(self, market: MarketConfig) -> Sequence[ReferenceSource]:
        """The on-chain price references it offers for its own pools (e.g. a TWAP)."""
        return ()

    def own_pools(self, addresses: ProtocolAddresses) -> Sequence[str]:
        """Its pools that are not Uniswap V2 pairs (allowlisted with the pool role): the
        observer leaves them to this protocol's `price_checks` instead of reading reserves."""
        return ()

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
        """Price checks of its own pools that are not Uniswap V2 pairs (a V3 pool: spot
        against its observe() TWAP), added to every market snapshot for `price-sane`. Each
        check of a pool with fee tiers carries its `fee`. Most protocols have none."""
        return ()

    def tokens(self, addresses: ProtocolAddresses) -> Sequence[str]:
        """ERC-20 tokens it issues to the agent (a vault's shares): the observer reads them as
        holdings, so the portfolio, its value and the position limits see them."""
        return ()

    def token_prices(
        self,
        w3: Web3,
        addresses: ProtocolAddresses,
        prices: Mapping[str, float],
        *,
        block: int,
    ) -> Mapping[str, float]:
        """Numeraire per smallest unit of each of its `tokens`, derived from `prices` (the
        tick's sane prices of plain tokens) and read at `block`. A token it cannot price is
        left out, and whatever must value it refuses."""
        return {}

    def read_pool(self, reader: ChainReader, address: str) -> PoolState | None:
        """The state of one of its pools at the reader's block; None if it has no pools."""
        return None

    def deploy_devnet(
        self, w3: Web3, deployer: str, deployed: Mapping[str, DevnetDeployment]
    ) -> DevnetDeployment | None:
        """Deploy it from the npm packages' bytecode on a devnet (`defiagent devnet up`).

        `deployed` holds what the protocols before it in the registry deployed (WETH
        before the DEXes that need it). None: it deploys nothing of its own.
        """
        return None

    def devnet_traders(
        self, w3: Web3, deployed: Mapping[str, DevnetDeployment]
    ) -> Sequence[tuple[str, Callable[[], str]]]:
        """(name, one trade) per market of its own that the devnet's traders move between
        rounds (`defiagent devnet up`); each call makes one trade and says what it did."""
        return ()
