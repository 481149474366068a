"""The round trip (honeypot probe) of a Uniswap V3 buy, on the real V3 stack on anvil.

The demo's V3 market (deploy_demo_v3: DUSD/DTKN at 0.05% and 0.3%, WETH/DUSD at 0.3%) beside
the V2 demo, and the test tokens of tests/contracts/honeypot/Honeypot.sol, each pooled on V3
against DUSD at 0.3% (the token's `pair` is that V3 pool):
  TRAP  transfers to the pool revert unless from the owner: it can be bought, never sold;
  STAX  a 40% fee on transfers to the pool (a sell tax): the pool is paid short, and V3's
        pool reverts the sale ("IIA"), so it cannot be sold;
  BTAX  a 40% fee on transfers from the pool (a buy tax): it sells, losing far beyond fees;
  FEE5  a 0.5% buy tax: within a 100 bps limit, beyond a 40 bps one.
The buy is the SwapRouter call the V3 planner encodes (approve + exactInputSingle,
exactInput, exactOutputSingle or exactOutput); the sale back is exactInput along the
reverse path, judged against QuoterV2's quote of it after the buy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest
from eth_account import Account
from web3 import Web3

from defiagent.agent.devnet import UNIT, DemoMarket, deploy_market
from defiagent.chain.anvil import Anvil
from defiagent.devchain import artifacts as v2_artifacts
from defiagent.devchain.deploy import contract as deployed_contract
from defiagent.execution.models import ExpectedDelta, PlannedCall
from defiagent.guard.calldata import encode_call
from defiagent.guard.packed_path import encode_path
from defiagent.protocols.base import ProtocolAddresses
from defiagent.protocols.uniswap_v3 import functions as v3fn
from defiagent.protocols.uniswap_v3.devnet import (
    PoolSpec,
    UniswapV3Deployment,
    add_pool,
    deploy_demo_v3,
)
from defiagent.protocols.uniswap_v3.round_trip import probe_v3_round_trip
from defiagent.simulation import ForkManager, Simulator
from defiagent.simulation.checks import RoundTripConfig, RoundTripSellable
from defiagent.simulation.round_trip import check_plan_round_trip
from defiagent.strategy.intent_base import SwapExactIn, SwapExactOut
from tests.allowlist.support import compiled, contract, deploy, transact
from tests.simulation.helpers import approve_call

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("uniswap-v3-round-trip")]

DEPTH = 1_000_000 * UNIT  # each test token's V3 pool: 1,000,000 DUSD against 1,000,000
BUY = 1_000 * UNIT  # 0.1% of it
STRANGER = Web3.to_checksum_address("0x000000000000000000000000000000000000bEEF")


@dataclass
class World:
    w3: Web3
    market: DemoMarket
    v3: UniswapV3Deployment
    agent: str
    tokens: dict[str, str]  # symbol -> the honeypot test tokens
    fork: ForkManager

    @property
    def dusd(self) -> str:
        return self.market.dusd

    @property
    def dtkn(self) -> str:
        return self.market.dtkn

    @property
    def weth(self) -> str:
        return self.market.dex.weth

    def pool(self, a: str, b: str, fee: int) -> str:
        pool = self.v3.pool(a, b, fee)
        assert pool is not None
        return pool.address

    @property
    def addresses(self) -> ProtocolAddresses:
        return ProtocolAddresses(
            router=self.market.dex.router,
            weth=self.weth,
            sections={"uniswap-v3": self.v3.settings()},
        )


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with Anvil(log_dir=tmp_path_factory.mktemp("upstream")) as node:
        w3 = Web3(Web3.HTTPProvider(node.url))
        market = deploy_market(w3)
        v3 = deploy_demo_v3(w3, weth=market.dex.weth, dusd=market.dusd, dtkn=market.dtkn)
        deployer = market.dex.deployer
        c = compiled("honeypot/Honeypot.sol")
        specs = {
            "TRAP": ("SellBlockToken", ()),
            "STAX": ("FeeToken", (4_000, True)),
            "BTAX": ("FeeToken", (4_000, False)),
            "FEE5": ("FeeToken", (50, False)),
        }
        tokens = {}
        for symbol, (name, extra) in specs.items():
            token = deploy(
                w3, contract(c, name), f"{symbol} token", symbol, 10**27, *extra, sender=deployer
            )
            spec = PoolSpec(
                token_x=market.dusd, token_y=token.address, fee=3000, amount_x=DEPTH, amount_y=DEPTH
            )
            v3 = add_pool(w3, v3, spec)
            pool = v3.pool(market.dusd, token.address, 3000)
            assert pool is not None
            # The trap is set once the pool is funded (the owner's own transfers are free).
            transact(w3, token.functions.setPair(pool.address), deployer)
            tokens[symbol] = token.address
        agent = Account.create().address
        for token, amount in ((market.dusd, 50_000 * UNIT),):
            erc20 = deployed_contract(w3, v2_artifacts.demo_token(), token)
            transact(w3, erc20.functions.transfer(agent, amount), deployer)
        weth = deployed_contract(w3, v2_artifacts.weth9(), market.dex.weth)
        w3.eth.wait_for_transaction_receipt(
            weth.functions.deposit().transact({"from": deployer, "value": 10 * UNIT})
        )
        transact(w3, weth.functions.transfer(agent, 10 * UNIT), deployer)
        with ForkManager(node.url, log_dir=tmp_path_factory.mktemp("fork")) as fork:
            yield World(w3=w3, market=market, v3=v3, agent=agent, tokens=tokens, fork=fork)


@pytest.fixture
def sim(world) -> Simulator:
    return Simulator(world.fork)


# ------------------------------------------------------------------------------ the buys


def _deadline() -> int:
    return int(time.time()) + 3600


def exact_in(world: World, path: list[str], fees: list[int], amount: int) -> list[PlannedCall]:
    """approve + exactInputSingle (one hop) or exactInput, as the V3 planner encodes them."""
    agent, router = world.agent, world.v3.router
    if len(fees) == 1:
        data = encode_call(
            v3fn.EXACT_INPUT_SINGLE,
            [(path[0], path[1], fees[0], agent, _deadline(), amount, 0, 0)],
        )
    else:
        data = encode_call(
            v3fn.EXACT_INPUT, [(encode_path(path, fees), agent, _deadline(), amount, 0)]
        )
    return [
        approve_call(path[0], router, amount, agent),
        PlannedCall(
            intent_id="i-swap",
            intent_kind="swap-exact-in",
            target=router,
            data=data,
            sender=agent,
            expected=[
                ExpectedDelta(token=path[0], min_delta=-amount),
                ExpectedDelta(token=path[-1], min_delta=0),
            ],
            description="buy on uniswap-v3",
        ),
    ]


def exact_out(
    world: World, path: list[str], fees: list[int], amount_out: int, most: int
) -> list[PlannedCall]:
    """approve + exactOutputSingle or exactOutput (the path reversed, as the router takes it)."""
    agent, router = world.agent, world.v3.router
    if len(fees) == 1:
        data = encode_call(
            v3fn.EXACT_OUTPUT_SINGLE,
            [(path[0], path[1], fees[0], agent, _deadline(), amount_out, most, 0)],
        )
    else:
        packed = encode_path(path[::-1], fees[::-1])
        data = encode_call(v3fn.EXACT_OUTPUT, [(packed, agent, _deadline(), amount_out, most)])
    return [
        approve_call(path[0], router, most, agent),
        PlannedCall(
            intent_id="i-swap",
            intent_kind="swap-exact-out",
            target=router,
            data=data,
            sender=agent,
            expected=[
                ExpectedDelta(token=path[0], min_delta=-most),
                ExpectedDelta(token=path[-1], min_delta=amount_out),
            ],
            description="buy on uniswap-v3",
        ),
    ]


def probe(sim, world: World, calls: list[PlannedCall], *, limit_bps: int = 100, quoter=None):
    return probe_v3_round_trip(
        sim,
        world.agent,
        world.v3.router,
        quoter or world.v3.quoter,
        calls,
        limit_bps=limit_bps,
    )


def buy_token(sim, world: World, symbol: str, *, limit_bps: int = 100):
    token = world.tokens[symbol]
    return probe(sim, world, exact_in(world, [world.dusd, token], [3000], BUY), limit_bps=limit_bps)


def two_way_fees_bps(*fees: int) -> float:
    kept = 1.0
    for fee in fees:
        kept *= 1 - fee / 1_000_000
    return 10_000 * (1 - kept**2)


# ------------------------------------------------------------------------------ honest buys


def test_an_honest_single_hop_buy_sells_back_exactly_as_quoted(sim, world):
    result = probe(sim, world, exact_in(world, [world.dusd, world.dtkn], [3000], 500 * UNIT))
    assert result.sellable
    assert result.passed, result.reason
    assert result.bought > 0
    assert result.spent == 500 * UNIT
    # QuoterV2's quote of the sale is the pool's own math on the state the buy left.
    assert result.sold_back == result.expected_back > 0
    assert result.loss_bps_beyond_fees == 0
    assert result.fees_bps == pytest.approx(two_way_fees_bps(3000), abs=0.01)  # 0.3% each way
    assert result.expected_loss_bps == pytest.approx(59.9, abs=0.5)
    assert result.pools == [world.pool(world.dusd, world.dtkn, 3000)]
    assert result.router == world.v3.router
    assert result.path == [world.dusd, world.dtkn]
    assert result.back_token == world.dusd
    assert result.token == world.dtkn
    assert "DTKN sells back" in result.reason
    assert "expected from QuoterV2's quote at block" in result.reason
    assert RoundTripSellable().judge(result).allowed


def test_a_multi_hop_exact_input_buy_sells_back_along_the_reverse_path(sim, world):
    path, fees = [world.weth, world.dusd, world.dtkn], [3000, 500]
    result = probe(sim, world, exact_in(world, path, fees, UNIT // 10))
    assert result.passed, result.reason
    assert result.sold_back == result.expected_back > 0
    assert result.spent == UNIT // 10
    assert result.path == path
    assert result.pools == [
        world.pool(world.weth, world.dusd, 3000),
        world.pool(world.dusd, world.dtkn, 500),
    ]
    assert result.fees_bps == pytest.approx(two_way_fees_bps(3000, 500), abs=0.01)


def test_exact_output_buys_single_and_multi_hop(sim, world):
    single = probe(sim, world, exact_out(world, [world.dusd, world.dtkn], [500], BUY, BUY))
    assert single.passed, single.reason
    assert single.bought == BUY
    assert single.pools == [world.pool(world.dusd, world.dtkn, 500)]
    path, fees = [world.weth, world.dusd, world.dtkn], [3000, 3000]
    multi = probe(sim, world, exact_out(world, path, fees, BUY, UNIT))
    assert multi.passed, multi.reason
    assert multi.bought == BUY
    assert multi.path == path
    assert multi.sold_back == multi.expected_back


# ------------------------------------------------------------------------------ honeypots


def test_a_token_that_cannot_be_sold_to_its_v3_pool_is_refused(sim, world):
    result = buy_token(sim, world, "TRAP")
    assert not result.sellable
    assert not result.passed
    assert result.bought > 0  # the buy itself went through: that is the trap
    assert "TRAP cannot be sold" in result.reason
    assert "(exactInput) reverts on the fork" in result.reason
    assert "STF" in result.reason  # the router's TransferHelper: the token refused the move
    verdict = RoundTripSellable().judge(result)
    assert not verdict.allowed
    assert verdict.rule == "round-trip-sellable"


def test_a_sell_tax_short_pays_the_v3_pool_so_it_cannot_be_sold(sim, world):
    result = buy_token(sim, world, "STAX")
    assert not result.sellable
    assert not result.passed
    assert "STAX cannot be sold" in result.reason
    assert "IIA" in result.reason  # the pool's own check that it was paid in full


def test_a_40_percent_tax_loses_far_more_than_fees(sim, world):
    result = buy_token(sim, world, "BTAX")
    assert result.sellable
    assert not result.passed
    # 40% of what the pool paid went to the owner, so about 40% less comes back than
    # QuoterV2 gives for what an honest token would have delivered.
    assert result.sold_back < result.expected_back * 0.61
    assert 3_900 < result.loss_bps_beyond_fees < 4_100
    assert "BTAX loses" in result.reason
    assert "bps beyond the pools' fees on a round trip (limit 100)" in result.reason
    assert "but QuoterV2's quote at block" in result.reason
    assert not RoundTripSellable().judge(result).allowed


def test_both_sides_of_the_limit(sim, world):
    passes = buy_token(sim, world, "FEE5", limit_bps=100)
    assert passes.passed, passes.reason
    assert 45 < passes.loss_bps_beyond_fees < 55
    fails = buy_token(sim, world, "FEE5", limit_bps=40)
    assert fails.sellable
    assert not fails.passed
    assert "(limit 40)" in fails.reason
    assert fails.loss_bps_beyond_fees == passes.loss_bps_beyond_fees


# ------------------------------------------------------------------------------ fails closed


def test_a_probe_that_cannot_run_refuses(sim, world):
    calls = exact_in(world, [world.dusd, world.dtkn], [3000], BUY)
    # The quoter is no contract: it answers nothing.
    nobody = probe(sim, world, calls, quoter=STRANGER)
    assert not nobody.passed
    assert not nobody.sellable
    assert "the round-trip probe could not run, so the buy is refused" in nobody.reason
    assert "returned nothing" in nobody.reason
    assert not RoundTripSellable().judge(nobody).allowed
    # A contract that is not QuoterV2 (the V2 router) cannot quote.
    wrong = probe(sim, world, calls, quoter=world.market.dex.router)
    assert not wrong.passed
    assert "could not run" in wrong.reason
    assert "cannot quote" in wrong.reason
    # A last call that is not a SwapRouter swap.
    raw = probe(sim, world, calls[:1])
    assert not raw.passed
    assert "is not a Uniswap V3 SwapRouter swap" in raw.reason
    # A fee tier without a pool: the buy itself reverts on the fork.
    none = probe(sim, world, exact_in(world, [world.dusd, world.dtkn], [10_000], BUY))
    assert not none.passed
    assert "the buy itself reverts on the fork" in none.reason


# ------------------------------------------------------------------------------ the agent's step


def test_the_agent_step_routes_a_v3_buy_to_the_v3_probe(sim, world):
    kw = {
        "agent": world.agent,
        "router": world.market.dex.router,
        "weth": world.weth,
        "numeraire": world.dusd,
        "addresses": world.addresses,
    }
    for symbol, token, allowed in (
        ("DTKN", world.dtkn, True),
        ("TRAP", world.tokens["TRAP"], False),
        ("BTAX", world.tokens["BTAX"], False),
    ):
        intent = SwapExactIn(
            token_in=world.dusd,
            token_out=token,
            amount_in=BUY,
            min_amount_out=0,
            venue="uniswap-v3",
            fees=[3000],
        )
        calls = exact_in(world, [world.dusd, token], [3000], BUY)
        outcomes = sim.simulate_sequence(calls)
        probed = check_plan_round_trip(sim, intent, calls, outcomes, **kw)
        assert probed is not None
        result, verdict = probed
        assert verdict.allowed is allowed, (symbol, verdict.reason)
        assert verdict.rule == "round-trip-sellable"
        assert result.router == world.v3.router  # the SwapRouter, not V2's router
        assert symbol in result.reason
    # The limit is the config's.
    strict = RoundTripConfig(max_round_trip_loss_bps=40)
    fee5 = world.tokens["FEE5"]
    intent = SwapExactIn(
        token_in=world.dusd,
        token_out=fee5,
        amount_in=BUY,
        min_amount_out=0,
        venue="uniswap-v3",
        fees=[3000],
    )
    calls = exact_in(world, [world.dusd, fee5], [3000], BUY)
    probed = check_plan_round_trip(sim, intent, calls, None, config=strict, **kw)
    assert probed is not None
    assert not probed[1].allowed
    assert "(limit 40)" in probed[1].reason
    # Without the [protocols.uniswap-v3] table the V3 probe cannot run: refused.
    bare = {**kw, "addresses": None}
    probed = check_plan_round_trip(sim, intent, calls, None, **bare)
    assert probed is not None
    assert not probed[1].allowed
    assert "could not run" in probed[1].reason
    assert "[protocols.uniswap-v3]" in probed[1].reason


def test_a_v3_sale_into_the_numeraire_is_not_probed(sim, world):
    kw = {
        "agent": world.agent,
        "router": world.market.dex.router,
        "weth": world.weth,
        "numeraire": world.dusd,
        "addresses": world.addresses,
    }
    for token_out in (world.dusd, world.weth):
        sale = SwapExactIn(
            token_in=world.dtkn,
            token_out=token_out,
            amount_in=BUY,
            min_amount_out=0,
            venue="uniswap-v3",
            fees=[3000],
        )
        calls = exact_in(world, [world.dtkn, token_out], [3000], BUY)
        assert check_plan_round_trip(sim, sale, calls, None, **kw) is None
    sale_out = SwapExactOut(
        token_in=world.dtkn,
        token_out=world.dusd,
        amount_out=BUY,
        max_amount_in=3 * BUY,
        venue="uniswap-v3",
        fees=[500],
    )
    calls = exact_out(world, [world.dtkn, world.dusd], [500], BUY, 3 * BUY)
    assert check_plan_round_trip(sim, sale_out, calls, None, **kw) is None


def test_a_v2_buy_still_takes_the_v2_probe(sim, world):
    """The same step, a buy on venue uniswap-v2: Router02 and the reserves' exact math."""
    from tests.simulation.helpers import swap_call

    d = world.market.dex
    intent = SwapExactIn(token_in=world.dusd, token_out=world.dtkn, amount_in=BUY, min_amount_out=0)
    assert intent.venue == "uniswap-v2"
    calls = [
        approve_call(world.dusd, d.router, BUY, world.agent),
        swap_call(d, world.dusd, world.dtkn, BUY, 0, world.agent),
    ]
    probed = check_plan_round_trip(
        sim,
        intent,
        calls,
        None,
        agent=world.agent,
        router=d.router,
        weth=world.weth,
        numeraire=world.dusd,
        addresses=world.addresses,
    )
    assert probed is not None
    result, verdict = probed
    assert verdict.allowed, verdict.reason
    assert result.router == d.router
    assert result.sold_back == result.expected_back
    assert result.fees_bps == pytest.approx(59.9, abs=0.1)
    assert "expected from the reserves at block" in result.reason
