"""The round trip (honeypot probe) on the real Uniswap V2 stack, against real test tokens.

Tokens (tests/contracts/honeypot/Honeypot.sol), each in a pool against DUSD:
  HNST  an honest OpenZeppelin ERC-20 (the control);
  TRAP  transfers to the pair revert unless from the owner: it can be bought, never sold;
  STAX  a 40% fee on transfers to the pair (a sell tax): Router02's swapExactTokensForTokens,
        which the agent sells with, reverts on it ("UniswapV2: K"), so it cannot be sold;
  BTAX  a 40% fee on transfers from the pair (a buy tax): it sells, losing far beyond fees;
  FEE5  a 0.5% buy tax: within a 100 bps limit, beyond a 40 bps one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account
from web3 import Web3

from defiagent.chain.anvil import Anvil
from defiagent.cli.app import main
from defiagent.devchain import artifacts
from defiagent.devchain.deploy import add_liquidity, deploy_uniswap_v2
from defiagent.execution.models import ExpectedDelta, PlannedCall
from defiagent.guard.calldata import encode_call
from defiagent.protocols.uniswap_v2.functions import ADD_LIQUIDITY, SWAP_EXACT_IN, SWAP_EXACT_OUT
from defiagent.simulation import ForkManager, Simulator
from defiagent.simulation.checks import RoundTripConfig, RoundTripSellable
from defiagent.simulation.round_trip import (
    check_plan_round_trip,
    needs_probe,
    probe_liquidity_round_trip,
    probe_round_trip,
)
from defiagent.strategy.intents import AddLiquidity, Approve, SwapExactIn, SwapExactOut
from tests.allowlist.support import Keys, compiled, contract, deploy, make_root, transact
from tests.simulation.helpers import approve_call, fund, swap_call

pytestmark = pytest.mark.slow

ONE = 10**18
DEPTH = 10**24  # each test token's pool: 1,000,000 DUSD against 1,000,000 of the token
BUY = 1_000 * ONE  # 0.1% of the pool


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    with Anvil(log_dir=tmp_path_factory.mktemp("upstream")) as node:
        yield node


@pytest.fixture(scope="module")
def w3(upstream) -> Web3:
    return Web3(Web3.HTTPProvider(upstream.url))


@pytest.fixture(scope="module")
def world(w3):
    """Uniswap V2, DUSD, a WETH/DUSD pool, and each test token in a pool against DUSD."""
    d = deploy_uniswap_v2(w3)
    dusd = d.token_a
    c = compiled("honeypot/Honeypot.sol")
    specs = {
        "HNST": ("HonestToken", ()),
        "TRAP": ("SellBlockToken", ()),
        "STAX": ("FeeToken", (4_000, True)),
        "BTAX": ("FeeToken", (4_000, False)),
        "FEE5": ("FeeToken", (50, False)),
    }
    tokens, pairs = {}, {}
    for symbol, (name, extra) in specs.items():
        token = deploy(w3, contract(c, name), f"{symbol} token", symbol, 10**27, *extra)
        pair = add_liquidity(w3, d, dusd, token.address, DEPTH, DEPTH)
        if name != "HonestToken":
            transact(w3, token.functions.setPair(pair), d.deployer)
        tokens[symbol], pairs[symbol] = token.address, pair
    weth = w3.eth.contract(address=d.weth, abi=artifacts.weth9().abi)
    w3.eth.wait_for_transaction_receipt(
        weth.functions.deposit().transact({"from": d.deployer, "value": 200 * ONE})
    )
    pairs["WETH"] = add_liquidity(w3, d, d.weth, dusd, 100 * ONE, 200_000 * ONE)
    agent = Account.create().address
    fund(w3, d, agent, token_a=10**23)
    # Some WETH for the two-hop buy (WETH -> DUSD -> HNST).
    w3.eth.wait_for_transaction_receipt(
        weth.functions.transfer(agent, 10 * ONE).transact({"from": d.deployer})
    )
    return {"d": d, "dusd": dusd, "tokens": tokens, "pairs": pairs, "agent": agent}


@pytest.fixture(scope="module")
def fork(upstream, world, tmp_path_factory):
    with ForkManager(upstream.url, log_dir=tmp_path_factory.mktemp("fork")) as manager:
        yield manager


@pytest.fixture
def sim(fork) -> Simulator:
    return Simulator(fork)


def buy(world, symbol: str, amount: int = BUY) -> list[PlannedCall]:
    d, agent = world["d"], world["agent"]
    token = world["tokens"][symbol]
    return [
        approve_call(world["dusd"], d.router, amount, agent),
        swap_call(d, world["dusd"], token, amount, 0, agent),
    ]


def probe(sim, world, symbol: str, *, limit_bps: int = 100):
    d = world["d"]
    token = world["tokens"][symbol]
    return probe_round_trip(
        sim,
        world["agent"],
        d.router,
        buy(world, symbol),
        world["dusd"],
        token,
        [world["dusd"], token],
        limit_bps=limit_bps,
    )


# ------------------------------------------------------------------------------ the probe


def test_an_honest_token_sells_back_with_no_loss_beyond_fees(sim, world):
    result = probe(sim, world, "HNST")
    assert result.sellable
    assert result.passed, result.reason
    assert result.bought > 0
    assert result.sold_back == result.expected_back  # exact V2 math, both legs
    assert result.loss_bps_beyond_fees == 0
    assert result.fees_bps == pytest.approx(59.9, abs=0.1)  # 0.3% in, 0.3% out
    # In one pool the price impact of the two legs cancels out: the fees are what it costs.
    assert result.expected_loss_bps == pytest.approx(59.9, abs=0.2)
    assert result.pools == [world["pairs"]["HNST"]]
    assert "HNST sells back" in result.reason
    assert RoundTripSellable().judge(result).allowed


def test_a_token_that_cannot_be_sold_is_refused(sim, world):
    result = probe(sim, world, "TRAP")
    assert not result.sellable
    assert not result.passed
    assert result.bought > 0  # the buy itself went through: that is the trap
    assert "TRAP cannot be sold" in result.reason
    # Router02's TransferHelper reports the token's revert as its own.
    assert "reverts on the fork" in result.reason
    assert "TRANSFER_FROM_FAILED" in result.reason
    verdict = RoundTripSellable().judge(result)
    assert not verdict.allowed
    assert verdict.rule == "round-trip-sellable"


def test_a_sell_tax_makes_the_router_sale_revert_so_it_cannot_be_sold(sim, world):
    result = probe(sim, world, "STAX")
    assert not result.sellable
    assert not result.passed
    assert "STAX cannot be sold" in result.reason
    assert "UniswapV2: K" in result.reason


def test_a_40_percent_buy_tax_loses_far_more_than_fees(sim, world):
    result = probe(sim, world, "BTAX")
    assert result.sellable
    assert not result.passed
    # 40% of the tokens bought went to the owner, so about 40% less comes back.
    assert result.sold_back < result.expected_back * 0.61
    assert 3_900 < result.loss_bps_beyond_fees < 4_100
    assert "BTAX loses" in result.reason
    assert "bps beyond the pools' fees on a round trip (limit 100)" in result.reason
    assert not RoundTripSellable().judge(result).allowed


def test_both_sides_of_the_limit(sim, world):
    passes = probe(sim, world, "FEE5", limit_bps=100)
    assert passes.passed, passes.reason
    assert 45 < passes.loss_bps_beyond_fees < 55
    fails = probe(sim, world, "FEE5", limit_bps=40)
    assert fails.sellable
    assert not fails.passed
    assert "(limit 40)" in fails.reason
    assert fails.loss_bps_beyond_fees == passes.loss_bps_beyond_fees


def test_exact_out_and_two_hop_buys_use_the_same_exact_math(sim, world):
    d, agent, dusd = world["d"], world["agent"], world["dusd"]
    hnst = world["tokens"]["HNST"]
    want, most = 500 * ONE, 2 * BUY
    exact_out = PlannedCall(
        intent_id="x",
        intent_kind="swap-exact-out",
        target=d.router,
        data=encode_call(SWAP_EXACT_OUT, [want, most, [dusd, hnst], agent, 2**40]),
        sender=agent,
        expected=[
            ExpectedDelta(token=dusd, min_delta=-most),
            ExpectedDelta(token=hnst, min_delta=want),
        ],
    )
    calls = [approve_call(dusd, d.router, most, agent), exact_out]
    result = probe_round_trip(sim, agent, d.router, calls, dusd, hnst)  # path from the call
    assert result.passed, result.reason
    assert result.bought == want
    assert result.loss_bps_beyond_fees == 0

    path = [d.weth, dusd, hnst]
    two_hop = PlannedCall(
        intent_id="y",
        intent_kind="swap-exact-in",
        target=d.router,
        data=encode_call(SWAP_EXACT_IN, [ONE, 0, path, agent, 2**40]),
        sender=agent,
        expected=[
            ExpectedDelta(token=d.weth, min_delta=-ONE),
            ExpectedDelta(token=hnst, min_delta=0),
        ],
    )
    calls = [approve_call(d.weth, d.router, ONE, agent), two_hop]
    result = probe_round_trip(sim, agent, d.router, calls, d.weth, hnst, path)
    assert result.passed, result.reason
    assert result.pools == [world["pairs"]["WETH"], world["pairs"]["HNST"]]
    assert result.loss_bps_beyond_fees == 0
    assert result.fees_bps == pytest.approx(119.6, abs=0.2)  # two hops each way


def _add(world, symbol: str) -> list[PlannedCall]:
    d, agent, dusd = world["d"], world["agent"], world["dusd"]
    token = world["tokens"][symbol]
    amount = 100 * ONE
    return [
        approve_call(dusd, d.router, amount, agent),
        approve_call(token, d.router, amount, agent),
        PlannedCall(
            intent_id="l",
            intent_kind="add-liquidity",
            target=d.router,
            data=encode_call(ADD_LIQUIDITY, [dusd, token, amount, amount, 0, 0, agent, 2**40]),
            sender=agent,
            expected=[
                ExpectedDelta(token=dusd, min_delta=-amount),
                ExpectedDelta(token=token, min_delta=-amount),
                ExpectedDelta(token=world["pairs"][symbol], min_delta=1),
            ],
        ),
    ]


def test_adding_liquidity_is_probed_by_removing_it(sim, world, w3):
    d, agent, dusd = world["d"], world["agent"], world["dusd"]
    # The agent holds some of each token for the add (bought on the upstream chain by hand).
    for symbol in ("HNST", "BTAX"):
        erc20 = w3.eth.contract(address=world["tokens"][symbol], abi=artifacts.demo_token().abi)
        transact(w3, erc20.functions.transfer(agent, 1_000 * ONE), d.deployer)
    honest = probe_liquidity_round_trip(
        sim, agent, d.router, _add(world, "HNST"), dusd, world["tokens"]["HNST"]
    )
    assert honest.kind == "liquidity"
    assert honest.passed, honest.reason
    assert honest.token == world["pairs"]["HNST"]
    assert honest.loss_bps_beyond_fees < 0.01
    # BTAX taxes what leaves the pair: the removal pays 40% of the BTAX back to its owner.
    taxed = probe_liquidity_round_trip(
        sim, agent, d.router, _add(world, "BTAX"), dusd, world["tokens"]["BTAX"]
    )
    assert taxed.sellable
    assert not taxed.passed
    assert taxed.back_token == world["tokens"]["BTAX"]
    assert 3_900 < taxed.loss_bps_beyond_fees < 4_100
    # TRAP refuses transfers to the pair: the add itself reverts, and the probe refuses.
    trap = probe_liquidity_round_trip(
        sim, agent, d.router, _add(world, "TRAP"), dusd, world["tokens"]["TRAP"]
    )
    assert not trap.passed
    assert "the buy itself reverts" in trap.reason


def test_a_probe_that_cannot_run_refuses(upstream, world, tmp_path):
    d, agent = world["d"], world["agent"]
    calls = buy(world, "HNST")
    hnst = world["tokens"]["HNST"]
    # The upstream stops answering: the fork cannot be moved to its head.
    with Anvil(log_dir=tmp_path / "up") as other, ForkManager(other.url) as fork:
        other.stop()
        result = probe_round_trip(fork, agent, d.router, calls, world["dusd"], hnst)
    assert not result.passed
    assert not result.sellable
    assert result.reason.startswith("the round-trip probe could not run, so the buy is refused")
    assert not RoundTripSellable().judge(result).allowed
    # The fork itself is gone.
    with ForkManager(upstream.url) as gone:
        pass
    result = probe_round_trip(Simulator(gone), agent, d.router, calls, world["dusd"], hnst)
    assert not result.passed
    assert "could not run" in result.reason
    assert "not running" in result.reason
    # No result at all refuses too.
    assert not RoundTripSellable().judge(None).allowed


# ------------------------------------------------------------------------------ the agent's step


def test_which_intents_are_buys(world):
    d, dusd = world["d"], world["dusd"]
    hnst = world["tokens"]["HNST"]
    money = {"weth": d.weth, "numeraire": dusd}

    def swap(token_in, token_out):
        return SwapExactIn(token_in=token_in, token_out=token_out, amount_in=1, min_amount_out=1)

    assert needs_probe(swap(dusd, hnst), **money)
    assert needs_probe(
        SwapExactOut(token_in=d.weth, token_out=hnst, amount_out=1, max_amount_in=1), **money
    )
    assert not needs_probe(swap(hnst, dusd), **money)  # a sale into the numeraire
    assert not needs_probe(swap(dusd, d.weth), **money)  # WETH is money too
    assert needs_probe(
        AddLiquidity(
            token_a=dusd, token_b=hnst, amount_a=1, amount_b=1, min_amount_a=0, min_amount_b=0
        ),
        **money,
    )
    assert not needs_probe(Approve(token=dusd, spender=d.router, amount=0), **money)


def test_the_agent_step_reuses_the_plan_simulation_and_reads_its_config(sim, world):
    d, agent, dusd = world["d"], world["agent"], world["dusd"]
    kw = {"agent": agent, "router": d.router, "weth": d.weth, "numeraire": dusd}
    for symbol, allowed in (("HNST", True), ("TRAP", False), ("FEE5", True)):
        token = world["tokens"][symbol]
        intent = SwapExactIn(token_in=dusd, token_out=token, amount_in=BUY, min_amount_out=0)
        calls = buy(world, symbol)
        outcomes = sim.simulate_sequence(calls)
        probe_, verdict = check_plan_round_trip(sim, intent, calls, outcomes, **kw)
        assert verdict.allowed is allowed, verdict.reason
        assert verdict.rule == "round-trip-sellable"
        assert probe_.limit_bps == 100
    strict = RoundTripConfig(max_round_trip_loss_bps=40)
    _, verdict = check_plan_round_trip(sim, intent, calls, outcomes, config=strict, **kw)
    assert not verdict.allowed
    assert "(limit 40)" in verdict.reason
    off = RoundTripConfig(enabled=False)
    assert check_plan_round_trip(sim, intent, calls, outcomes, config=off, **kw) is None
    sale = SwapExactIn(token_in=token, token_out=dusd, amount_in=1, min_amount_out=0)
    assert check_plan_round_trip(sim, sale, calls, outcomes, **kw) is None


def test_the_rule_is_listed_and_configured(capsys):
    from defiagent.guard.registry import parse_sections

    guard, _ = parse_sections({}, {})
    assert guard.honeypot.enabled
    assert guard.honeypot.max_round_trip_loss_bps == 100
    guard, _ = parse_sections({"honeypot": {"max_round_trip_loss_bps": 40}}, {})
    assert guard.honeypot.max_round_trip_loss_bps == 40
    assert main(["rules", "list", "--json"]) == 0
    rules = {r["id"]: r for r in json.loads(capsys.readouterr().out)["rules"]}
    rule = rules["round-trip-sellable"]
    assert rule["group"] == "outcome"
    assert rule["severity"] == "critical"
    assert rule["config_section"] == "guard.honeypot"


# ------------------------------------------------------------------------------ propose


def _propose(capsys, upstream, world, root, symbol, *extra):
    argv = [
        "allowlist",
        "propose",
        world["tokens"][symbol],
        "--rpc-url",
        upstream.url,
        "--name",
        f"{symbol} token",
        "--role",
        "token",
        "--probe-pool",
        world["pairs"][symbol],
        "--probe-router",
        world["d"].router,
        "--allowlist",
        str(root),
        *extra,
    ]
    code = main(argv)
    return code, capsys.readouterr().out


def test_propose_runs_the_probe_and_fails_a_honeypot(capsys, upstream, world, tmp_path):
    root = make_root(tmp_path / "allowlist", Keys())
    code, out = _propose(capsys, upstream, world, root, "TRAP", "--json")
    assert code == 1, out
    doc = json.loads(out)
    assert not doc["ok"]
    assert not doc["checks_pass"]
    assert not doc["round_trip"]["passed"]
    assert doc["round_trip"]["path"][0] == world["d"].weth  # bought with wrapped ETH
    failing = [o for o in doc["report"]["outcomes"] if o["status"] == "fail"]
    assert any(
        o["check"] == "round-trip-sellable" and "TRAP cannot be sold" in o["reason"]
        for o in failing
    )
    review = Path(doc["review_report"]).read_text()
    assert "| round-trip-sellable | FAIL |" in review
    assert "## Round trip" in review
    assert "TRAP cannot be sold" in review

    # The human output names the finding too.
    code, out = _propose(capsys, upstream, world, root, "BTAX")
    assert code == 1
    assert "round-trip-sellable" in out
    assert "FAIL" in out

    # The honest token passes the probe. The other checks are the usual review: with no
    # sources and no audit given here they fail, so the command still exits 1.
    code, out = _propose(capsys, upstream, world, root, "HNST", "--json")
    doc = json.loads(out)
    assert code == 1, out
    assert not doc["checks_pass"]
    assert not any(
        o["check"] == "round-trip-sellable" and o["status"] == "fail"
        for o in doc["report"]["outcomes"]
    )
    assert doc["round_trip"]["passed"]
    assert doc["round_trip"]["loss_bps_beyond_fees"] == 0
    assert any(
        o["check"] == "round-trip-sellable" and o["status"] == "pass"
        for o in doc["report"]["outcomes"]
    )


def test_propose_probe_options_are_checked(capsys, upstream, world, tmp_path):
    root = make_root(tmp_path / "allowlist", Keys())
    pool, router = world["pairs"]["HNST"], world["d"].router
    common = ["--rpc-url", upstream.url, "--name", "x", "--allowlist", str(root), "--json"]

    def propose(address: str, *extra: str) -> tuple[int, dict]:
        code = main(["allowlist", "propose", address, *common, *extra])
        return code, json.loads(capsys.readouterr().out)

    code, out = propose(router, "--role", "router", "--probe-pool", pool, "--probe-router", router)
    assert code == 2
    assert "--role token" in out["error"]["message"]
    code, out = propose(world["tokens"]["HNST"], "--role", "token", "--probe-pool", pool)
    assert code == 2
    assert "--probe-router" in out["error"]["message"]
