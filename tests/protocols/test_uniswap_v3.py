"""Uniswap V3 end to end on anvil: planner -> QuoterV2 on the fork -> guard -> fork
simulation -> outcome checks -> signed and mined.

Real bytecode: @uniswap/v3-core 1.0.1 (factory, pools) and @uniswap/v3-periphery 1.4.4
(SwapRouter, QuoterV2, NonfungiblePositionManager) from npm, beside the V2 demo's WETH9
and OpenZeppelin tokens; full-range pools DUSD/DTKN at 0.05% and 0.3%, WETH/DUSD at 0.3%.
Each control is tried on both sides of its edge: the min-out at the slippage floor and one
wei under it, the max-in at the ceiling and one wei over; the agent as recipient and a
stranger; and the ways around them (no quote, a reviewer's forgotten constraint, a path
through an unknown token, a path that is not one).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from fractions import Fraction

import pytest
from eth_account import Account
from web3 import Web3

from defiagent.agent.devnet import UNIT, DemoMarket, deploy_market
from defiagent.allowlist.models import ActiveAllowlist, AllowlistEntry, ArgConstraint, Role
from defiagent.chain.anvil import Anvil
from defiagent.decisions import Decision
from defiagent.devchain import artifacts as v2_artifacts
from defiagent.devchain.deploy import contract
from defiagent.execution.models import PlannedCall
from defiagent.guard.base import FeeQuote, GuardContext
from defiagent.guard.calldata import decode_call, encode_call
from defiagent.guard.guard import Guard
from defiagent.guard.packed_path import encode_path
from defiagent.guard.registry import GUARD_RULES
from defiagent.market.models import MarketSnapshot, PortfolioSnapshot, TokenInfo
from defiagent.market.sanity import PriceSanityLimits
from defiagent.protocols import registry
from defiagent.protocols.base import PlanContext, PlanningError, ProtocolAddresses
from defiagent.protocols.erc20.adapter import Erc20
from defiagent.protocols.quoting import with_prequotes
from defiagent.protocols.uniswap_v3 import artifacts as v3_artifacts
from defiagent.protocols.uniswap_v3 import functions as v3fn
from defiagent.protocols.uniswap_v3.adapter import UniswapV3
from defiagent.protocols.uniswap_v3.devnet import UniswapV3Deployment, deploy_demo_v3
from defiagent.protocols.uniswap_v3.prices import pool_price_check
from defiagent.protocols.uniswap_v3.quoter import Web3Caller
from defiagent.simulation import ForkManager, Simulator
from defiagent.simulation.checks import CheckContext, run_checks
from defiagent.strategy.intent_base import SwapExactIn, SwapExactOut

pytestmark = [pytest.mark.xdist_group("uniswap-v3")]

BPS = 100  # the slippage rule's default bound
STRANGER = Web3.to_checksum_address("0x000000000000000000000000000000000000bEEF")


@dataclass
class World:
    w3: Web3
    market: DemoMarket
    v3: UniswapV3Deployment
    agent: Account
    fork: ForkManager
    sim: Simulator
    allowlist: ActiveAllowlist
    guard: Guard = field(default_factory=lambda: Guard([c() for c in GUARD_RULES]))

    @property
    def dusd(self) -> str:
        return self.market.dusd

    @property
    def dtkn(self) -> str:
        return self.market.dtkn

    @property
    def weth(self) -> str:
        return self.market.dex.weth

    @property
    def addresses(self) -> ProtocolAddresses:
        return ProtocolAddresses(
            router=self.market.dex.router,
            weth=self.weth,
            sections={"uniswap-v3": self.v3.settings()},
        )

    def balance(self, token: str) -> int:
        return int(
            contract(self.w3, v2_artifacts.demo_token(), token)
            .functions.balanceOf(self.agent.address)
            .call()
        )


def _entries(w3: Web3, market: DemoMarket, v3: UniswapV3Deployment) -> list[AllowlistEntry]:
    def entry(address: str, name: str, role: Role, functions=()) -> AllowlistEntry:
        return AllowlistEntry(
            chain_id=31337,
            address=address,
            name=name,
            role=role,
            codehash=w3.keccak(w3.eth.get_code(address)).to_0x_hex(),
            functions=list(functions),
        )

    approve = Erc20().scope("token").functions
    adapter = UniswapV3()
    return [
        entry(v3.router, "SwapRouter", Role.ROUTER, adapter.scope("router").functions),
        entry(v3.quoter, "QuoterV2", Role.ORACLE),
        entry(v3.factory, "UniswapV3Factory", Role.FACTORY),
        *(entry(p.address, f"UniswapV3Pool {p.fee}", Role.POOL) for p in v3.pools),
        entry(market.dusd, "Demo USD", Role.TOKEN, approve),
        entry(market.dtkn, "Demo Token", Role.TOKEN, approve),
        entry(market.dex.weth, "WETH9", Role.WRAPPED_NATIVE, approve),
    ]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with Anvil(log_dir=tmp_path_factory.mktemp("upstream")) as node:
        w3 = Web3(Web3.HTTPProvider(node.url))
        market = deploy_market(w3)
        v3 = deploy_demo_v3(w3, weth=market.dex.weth, dusd=market.dusd, dtkn=market.dtkn)
        agent = Account.create()
        deployer = market.dex.deployer

        def mined(tx_hash) -> None:
            assert w3.eth.wait_for_transaction_receipt(tx_hash)["status"] == 1

        mined(w3.eth.send_transaction({"from": deployer, "to": agent.address, "value": 20 * UNIT}))
        for token, amount in ((market.dusd, 50_000 * UNIT), (market.dtkn, 100_000 * UNIT)):
            erc20 = contract(w3, v2_artifacts.demo_token(), token)
            mined(erc20.functions.transfer(agent.address, amount).transact({"from": deployer}))
        weth = contract(w3, v2_artifacts.weth9(), market.dex.weth)
        mined(weth.functions.deposit().transact({"from": deployer, "value": 10 * UNIT}))
        mined(weth.functions.transfer(agent.address, 10 * UNIT).transact({"from": deployer}))
        # Two minutes of pool history, so observe() has a TWAP window to answer.
        w3.provider.make_request("evm_increaseTime", [120])
        w3.provider.make_request("evm_mine", [])
        entries = _entries(w3, market, v3)
        allowlist = ActiveAllowlist(chain_id=31337, entries={e.address: e for e in entries})
        with ForkManager(node.url, log_dir=tmp_path_factory.mktemp("fork")) as fork:
            yield World(
                w3=w3,
                market=market,
                v3=v3,
                agent=agent,
                fork=fork,
                sim=Simulator(fork),
                allowlist=allowlist,
            )


# ------------------------------------------------------------------ the pipeline


@dataclass
class Result:
    stage: str  # "guard", "outcome" or "sent"
    calls: list[PlannedCall]
    market: MarketSnapshot
    decisions: list[Decision] = field(default_factory=list)
    deltas: dict[str, int] = field(default_factory=dict)  # the swap's, on the fork

    @property
    def refused_by(self) -> set[str]:
        return {v.rule for d in self.decisions for v in d.refusals}

    @property
    def reason(self) -> str:
        return "; ".join(d.reason() for d in self.decisions if not d.allowed)

    @property
    def quote(self) -> int:
        assert len(self.market.swap_quotes) == 1
        return self.market.swap_quotes[0].quoted


def snapshots(world: World) -> tuple[MarketSnapshot, PortfolioSnapshot]:
    w3, agent = world.w3, world.agent.address
    world.fork.sync()
    block = w3.eth.get_block("latest")
    tokens = {
        world.dusd: TokenInfo(address=world.dusd, symbol="DUSD", decimals=18),
        world.dtkn: TokenInfo(address=world.dtkn, symbol="DTKN", decimals=18),
        world.weth: TokenInfo(address=world.weth, symbol="WETH", decimals=18),
    }
    rpc, limits = Web3Caller(w3), PriceSanityLimits()
    checks = [
        pool_price_check(
            rpc, p.address, tokens, now=block["timestamp"], window_seconds=60, limits=limits
        )
        for p in world.v3.pools
    ]
    market = MarketSnapshot(
        chain_id=31337,
        block_number=block["number"],
        block_timestamp=block["timestamp"],
        tokens=tokens,
        price_checks=checks,
        numeraire=world.dusd,
    )
    router = world.v3.router
    portfolio = PortfolioSnapshot(
        owner=agent,
        block_number=block["number"],
        eth_balance=w3.eth.get_balance(agent),
        balances={t: world.balance(t) for t in tokens},
        allowances={
            f"{t}:{router}": contract(w3, v2_artifacts.demo_token(), t)
            .functions.allowance(agent, router)
            .call()
            for t in tokens
        },
    )
    return market, portfolio


def guard_context(world: World, market: MarketSnapshot) -> GuardContext:
    return GuardContext(
        agent=world.agent.address,
        chain_id=31337,
        allowlist=world.allowlist,
        now=int(time.time()),
        block_number=market.block_number,
        block_timestamp=market.block_timestamp,
        codehashes={
            a: world.w3.keccak(world.w3.eth.get_code(a)).to_0x_hex()
            for a in world.allowlist.entries
        },
        market=market,
        prices={world.dusd: 1 / UNIT, world.dtkn: 0.5 / UNIT, world.weth: 2_000 / UNIT},
        strategy="test",
        intents_in_window=1,
        fees=FeeQuote(base_fee_per_gas=10**9, max_priority_fee_per_gas=10**9),
    )


def plan(world: World, intent) -> tuple[list[PlannedCall], MarketSnapshot]:
    market, portfolio = snapshots(world)
    ctx = PlanContext(agent=world.agent.address, addresses=world.addresses)
    calls = registry.route(intent).planner(ctx).plan(intent, market, portfolio)
    return calls, market


def run(
    world: World,
    intent=None,
    *,
    calls: list[PlannedCall] | None = None,
    allowlist: ActiveAllowlist | None = None,
    prequote: bool = True,
    send: bool = False,
    checks=None,
) -> Result:
    """Plan (unless `calls` are given), read QuoterV2's quotes on the fork, guard every
    call, simulate the plan on the fork, check every outcome; with `send`, sign each call
    with the agent's key and mine it."""
    if calls is None:
        calls, market = plan(world, intent)
    else:
        market, _ = snapshots(world)
    allowlist = allowlist or world.allowlist
    if prequote:
        fork_w3 = Web3(Web3.HTTPProvider(world.fork.url))
        block = fork_w3.eth.block_number
        market = with_prequotes(market, calls, allowlist, fork_w3, block, world.addresses)
    if checks is not None:  # the snapshot's price checks, edited by the test
        market = market.model_copy(update={"price_checks": checks(market.price_checks)})
    ctx = guard_context(world, market)
    if allowlist is not world.allowlist:
        ctx = dataclasses.replace(ctx, allowlist=allowlist)
    decisions = [world.guard.decide(c, ctx) for c in calls]
    if not all(d.allowed for d in decisions):
        return Result("guard", calls, market, decisions)
    outcomes = world.sim.simulate_sequence(calls)
    check_ctx = CheckContext(allowlist=allowlist, tokens=world.sim.token_meta(list(market.tokens)))
    decisions = [run_checks(c, o, check_ctx) for c, o in zip(calls, outcomes, strict=True)]
    result = Result("outcome", calls, market, decisions, deltas=outcomes[-1].deltas)
    if not all(d.allowed for d in decisions) or not send:
        return result
    for c in calls:
        sign_and_send(world, c)
    result.stage = "sent"
    return result


def sign_and_send(world: World, call: PlannedCall) -> None:
    w3, key = world.w3, world.agent
    tx = {
        "to": call.target,
        "data": call.data,
        "value": call.value,
        "nonce": w3.eth.get_transaction_count(key.address),
        "chainId": 31337,
        "gas": 600_000,
        "maxFeePerGas": 10 * 10**9,
        "maxPriorityFeePerGas": 10**9,
    }
    raw = key.sign_transaction(tx).raw_transaction
    assert w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(raw))["status"] == 1


def floor_of(quote: int) -> int:
    return math.floor(Fraction(quote) * (10_000 - BPS) / 10_000)


def ceiling_of(quote: int) -> int:
    return math.ceil(Fraction(quote) * (10_000 + BPS) / 10_000)


def exact_in(world: World, token_in, token_out, amount, fees, via=(), **kw) -> SwapExactIn:
    return SwapExactIn(
        token_in=token_in,
        token_out=token_out,
        amount_in=amount,
        min_amount_out=kw.pop("min_out", 1),
        venue="uniswap-v3",
        via=list(via),
        fees=fees,
        **kw,
    )


def exact_out(world: World, token_in, token_out, amount, fees, via=(), **kw) -> SwapExactOut:
    return SwapExactOut(
        token_in=token_in,
        token_out=token_out,
        amount_out=amount,
        max_amount_in=kw.pop("max_in", 10**30),
        venue="uniswap-v3",
        via=list(via),
        fees=fees,
        **kw,
    )


def quoted(world: World, intent) -> int:
    """QuoterV2's answer for the intent on the fork now (the guard's own figure)."""
    calls, market = plan(world, intent)
    fork_w3 = Web3(Web3.HTTPProvider(world.fork.url))
    market = with_prequotes(
        market, calls, world.allowlist, fork_w3, fork_w3.eth.block_number, world.addresses
    )
    assert len(market.swap_quotes) == 1, "the swap was not quoted"
    return market.swap_quotes[0].quoted


# ------------------------------------------------------------------ carried out


def test_exact_in_single_hop_at_the_slippage_floor_is_carried_out(world):
    amount = 400 * UNIT  # under the default per-transaction value cap (1,000 DUSD)
    probe = exact_in(world, world.dusd, world.dtkn, amount, [500])
    floor = floor_of(quoted(world, probe))
    before = world.balance(world.dtkn), world.balance(world.dusd)
    r = run(world, exact_in(world, world.dusd, world.dtkn, amount, [500], min_out=floor), send=True)
    assert r.stage == "sent", r.reason
    call = decode_call(v3fn.EXACT_INPUT_SINGLE, r.calls[-1].data)
    assert call.args["params.recipient"] == world.agent.address
    assert call.args["params.fee"] == 500
    got = world.balance(world.dtkn) - before[0]
    assert world.balance(world.dusd) == before[1] - amount
    # The mined swap pays what QuoterV2 quoted on the fork (same state), and the fork's
    # simulated delta is the same figure.
    assert got == r.quote == r.deltas[world.dtkn]
    assert got >= floor


def test_exact_out_single_hop_at_the_ceiling_is_carried_out(world):
    want = 500 * UNIT
    probe = exact_out(world, world.dtkn, world.dusd, want, [3000])
    ceiling = ceiling_of(quoted(world, probe))
    before = world.balance(world.dtkn), world.balance(world.dusd)
    r = run(
        world, exact_out(world, world.dtkn, world.dusd, want, [3000], max_in=ceiling), send=True
    )
    assert r.stage == "sent", r.reason
    assert world.balance(world.dusd) - before[1] == want
    spent = before[0] - world.balance(world.dtkn)
    assert spent == r.quote <= ceiling


def test_multi_hop_exact_in_and_exact_out_through_weth_dusd_dtkn(world):
    # WETH -> DUSD (0.3%) -> DTKN (0.05%): exactInput with a packed path.
    amount = UNIT // 5
    probe = exact_in(world, world.weth, world.dtkn, amount, [3000, 500], via=[world.dusd])
    floor = floor_of(quoted(world, probe))
    before = world.balance(world.dtkn)
    intent = exact_in(
        world, world.weth, world.dtkn, amount, [3000, 500], via=[world.dusd], min_out=floor
    )
    r = run(world, intent, send=True)
    assert r.stage == "sent", r.reason
    params = decode_call(v3fn.EXACT_INPUT, r.calls[-1].data).args
    assert params["params.path"] == encode_path([world.weth, world.dusd, world.dtkn], [3000, 500])
    assert world.balance(world.dtkn) - before == r.quote >= floor
    # The reverse, exact out: exactOutput takes the path bought-first.
    want = 100 * UNIT
    probe = exact_out(world, world.dtkn, world.weth, want // 1000, [500, 3000], via=[world.dusd])
    ceiling = ceiling_of(quoted(world, probe))
    before = world.balance(world.weth)
    intent = exact_out(
        world, world.dtkn, world.weth, want // 1000, [500, 3000], via=[world.dusd], max_in=ceiling
    )
    r = run(world, intent, send=True)
    assert r.stage == "sent", r.reason
    params = decode_call(v3fn.EXACT_OUTPUT, r.calls[-1].data).args
    assert params["params.path"] == encode_path([world.weth, world.dusd, world.dtkn], [3000, 500])
    assert world.balance(world.weth) - before == want // 1000


# ------------------------------------------------------------------ slippage


def test_min_out_one_wei_under_the_quoters_floor_is_refused(world):
    amount = 1_500 * UNIT
    floor = floor_of(quoted(world, exact_in(world, world.dtkn, world.dusd, amount, [500])))
    under = run(world, exact_in(world, world.dtkn, world.dusd, amount, [500], min_out=floor - 1))
    assert under.stage == "guard", under.reason
    assert under.refused_by == {"slippage-bound"}, under.reason
    assert "below the pool quote" in under.reason
    at = run(world, exact_in(world, world.dtkn, world.dusd, amount, [500], min_out=floor))
    assert at.stage == "outcome", at.reason
    assert not at.refused_by, at.reason


def test_max_in_one_wei_over_the_quoters_ceiling_is_refused(world):
    want = 700 * UNIT
    ceiling = ceiling_of(quoted(world, exact_out(world, world.dusd, world.dtkn, want, [3000])))
    over = run(world, exact_out(world, world.dusd, world.dtkn, want, [3000], max_in=ceiling + 1))
    assert over.stage == "guard", over.reason
    assert over.refused_by == {"slippage-bound"}, over.reason
    assert "above the pool quote" in over.reason
    at = run(world, exact_out(world, world.dusd, world.dtkn, want, [3000], max_in=ceiling))
    assert at.stage == "outcome", at.reason
    assert not at.refused_by, at.reason


def test_a_v3_swap_without_the_forks_quote_is_refused(world):
    # The guard never quotes a V3 swap with V2 math or from the strategy's own figures:
    # without QuoterV2's answer there is no bound, so no trade.
    intent = exact_in(world, world.dusd, world.dtkn, 10 * UNIT, [500], min_out=10 * UNIT)
    r = run(world, intent, prequote=False)
    assert r.stage == "guard"
    assert "slippage-bound" in r.refused_by
    assert "cannot quote" in r.reason


def test_a_pool_that_does_not_exist_cannot_be_quoted_so_is_refused(world):
    intent = exact_in(world, world.dusd, world.dtkn, 10 * UNIT, [10000], min_out=1)
    r = run(world, intent)
    assert r.stage == "guard"
    assert "slippage-bound" in r.refused_by
    assert r.market.swap_quotes == []


# ------------------------------------------------------------------ recipient


def test_a_foreign_recipient_is_refused_and_the_agent_is_not(world):
    amount = 100 * UNIT
    floor = floor_of(quoted(world, exact_in(world, world.dusd, world.dtkn, amount, [500])))
    theft = exact_in(
        world, world.dusd, world.dtkn, amount, [500], min_out=floor, recipient=STRANGER
    )
    r = run(world, theft)
    assert r.stage == "guard", r.reason
    assert r.refused_by == {"recipient-is-self"}, r.reason
    assert f"params.recipient={STRANGER}" in r.reason
    own = exact_in(
        world, world.dusd, world.dtkn, amount, [500], min_out=floor, recipient=world.agent.address
    )
    assert run(world, own).stage == "outcome"


def test_a_forgotten_recipient_constraint_still_refuses_by_the_field_name(world):
    # A reviewer who drops the equals-self constraint on params.recipient opens no hole:
    # the field is named like a recipient, and the name floor reads struct fields too.
    router = world.allowlist.entries[world.v3.router]
    loose = [
        f.model_copy(
            update={"constraints": [c for c in f.constraints if c.arg != "params.recipient"]}
        )
        for f in router.functions
    ]
    assert all(not any(c.arg == "params.recipient" for c in f.constraints) for f in loose)
    entries = dict(world.allowlist.entries)
    entries[world.v3.router] = router.model_copy(update={"functions": loose})
    allowlist = ActiveAllowlist(chain_id=31337, entries=entries)
    multi = exact_in(
        world, world.weth, world.dtkn, UNIT // 10, [3000, 500], via=[world.dusd], recipient=STRANGER
    )
    r = run(world, multi, allowlist=allowlist)
    assert r.stage == "guard", r.reason
    assert "recipient-is-self" in r.refused_by, r.reason


# ------------------------------------------------------------------ the ways around


def _raw_exact_input(world: World, path: bytes, min_out: int) -> PlannedCall:
    block = world.w3.eth.get_block("latest")
    data = encode_call(
        v3fn.EXACT_INPUT,
        [(path, world.agent.address, block["timestamp"] + 300, 10 * UNIT, min_out)],
    )
    return PlannedCall(
        intent_id="raw-v3",
        intent_kind="swap-exact-in",
        target=world.v3.router,
        data=data,
        sender=world.agent.address,
    )


def test_a_path_through_an_unlisted_token_is_refused(world):
    unknown = Web3.to_checksum_address("0x" + "5a" * 20)
    call = _raw_exact_input(world, encode_path([world.dusd, unknown, world.dtkn], [500, 500]), 1)
    r = run(world, calls=[call])
    assert r.stage == "guard"
    assert "tokens-allowlisted" in r.refused_by
    assert unknown in r.reason


def test_bytes_that_are_not_a_path_are_refused(world):
    broken = encode_path([world.dusd, world.dtkn], [500]) + b"\x00"
    r = run(world, calls=[_raw_exact_input(world, broken, 1)])
    assert r.stage == "guard"
    assert {"tokens-allowlisted", "slippage-bound", "price-sane"} <= r.refused_by
    assert "not a token path" in r.reason


def test_a_v3_swap_needs_its_fee_tiers(world):
    no_fees = SwapExactIn(
        token_in=world.dusd,
        token_out=world.dtkn,
        amount_in=UNIT,
        min_amount_out=1,
        venue="uniswap-v3",
    )
    with pytest.raises(PlanningError, match="fee tier per hop"):
        plan(world, no_fees)
    with pytest.raises(PlanningError, match="not a uniswap-v3 tier"):
        plan(world, exact_in(world, world.dusd, world.dtkn, UNIT, [400]))
    with pytest.raises(PlanningError, match="2 hop"):
        plan(world, exact_in(world, world.weth, world.dtkn, UNIT, [500], via=[world.dusd]))


def test_price_limit_other_than_zero_is_refused(world):
    # sqrtPriceLimitX96 stops a swap part way: the entry pins it to 0.
    block = world.w3.eth.get_block("latest")
    params = (
        world.dusd,
        world.dtkn,
        500,
        world.agent.address,
        block["timestamp"] + 300,
        UNIT,
        1,
        2**96,
    )
    call = PlannedCall(
        intent_id="limit",
        intent_kind="swap-exact-in",
        target=world.v3.router,
        data=encode_call(v3fn.EXACT_INPUT_SINGLE, [params]),
        sender=world.agent.address,
    )
    r = run(world, calls=[call])
    assert r.stage == "guard"
    assert "argument-equals" in r.refused_by


def test_v3_scopes_declare_their_roles_on_struct_fields():
    for fn in UniswapV3().scope("router").functions:
        assert fn.arg_roles["params.recipient"] == "recipient"
        assert fn.arg_roles["params.deadline"] == "deadline"
        assert ArgConstraint(arg="params.recipient", kind="equals-self") in fn.constraints


# ------------------------------------------------------------------ price reference


def fair(world: World, amount: int, fee: int) -> SwapExactIn:
    """DUSD -> DTKN at `fee` with min-out at the slippage floor of QuoterV2's quote now."""
    floor = floor_of(quoted(world, exact_in(world, world.dusd, world.dtkn, amount, [fee])))
    return exact_in(world, world.dusd, world.dtkn, amount, [fee], min_out=floor)


def test_a_v2_pairs_price_check_does_not_vouch_for_a_v3_pool(world):
    # Only the V2-keyed check (fee None) of DUSD/DTKN is left: the V3 hop at 0.05% has none.
    def as_v2_only(checks):
        fee500 = next(c for c in checks if c.fee == 500)
        return [fee500.model_copy(update={"fee": None})]

    r = run(world, fair(world, 10 * UNIT, 500), checks=as_v2_only)
    assert r.stage == "guard"
    assert r.refused_by == {"price-sane"}, r.reason
    assert "at fee tier 500" in r.reason


def test_a_pool_pushed_off_its_twap_is_refused(world):
    """A large swap moves the 0.05% pool's spot ~20% in one block; its observe() TWAP over
    60 s has not moved, so price-sane refuses a swap through it, not through the 0.3% pool."""
    w3 = world.w3
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]
    try:
        whale = world.market.dex.deployer
        dusd = contract(w3, v2_artifacts.demo_token(), world.dusd)
        router = contract(w3, v3_artifacts.swap_router(), world.v3.router)
        amount = 100_000 * UNIT
        for tx in (
            dusd.functions.approve(world.v3.router, amount),
            router.functions.exactInputSingle(
                (world.dusd, world.dtkn, 500, whale, 2**40, amount, 0, 0)
            ),
        ):
            assert w3.eth.wait_for_transaction_receipt(tx.transact({"from": whale}))["status"]
        pushed = run(world, fair(world, 10 * UNIT, 500))
        assert pushed.stage == "guard"
        assert pushed.refused_by == {"price-sane"}, pushed.reason
        assert "uniswap-v3-twap" in pushed.reason
        other = run(world, fair(world, 10 * UNIT, 3000))
        assert other.stage == "outcome", other.reason
    finally:
        w3.provider.make_request("evm_revert", [snapshot])
