"""Awkward tokens end to end on anvil: a USDT-style token (an approve between two non-zero
allowances reverts) and a fee-on-transfer token, each pooled against DUSD on the real
Uniswap V2 stack and traded by the agent through its planner, guard, fork simulation,
outcome checks and round trip; and the attack on each, refused before anything is signed."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from defiagent.agent import scopes
from defiagent.agent.observe import codehash
from defiagent.allowlist.models import ActiveAllowlist, AllowlistEntry, Role
from defiagent.devchain import artifacts
from defiagent.devchain.awkward import deploy_awkward_tokens, fund, set_transfer_fee
from defiagent.devchain.deploy import contract
from defiagent.guard.calldata import parse_signature
from defiagent.market.models import MarketSnapshot
from defiagent.protocols.uniswap_v2.functions import SWAP_EXACT_IN, SWAP_EXACT_IN_FOT
from defiagent.strategy.intents import SwapExactIn, SwapExactOut

pytestmark = pytest.mark.slow

E18 = 10**18
FEE_BPS = 100  # what the fee token keeps of a transfer, and what its entry declares
DEPTH = 10**24  # each awkward pool: 1,000,000 of the token against 1,000,000 DUSD
PLAIN = parse_signature(SWAP_EXACT_IN).selector
SUPPORTING = parse_signature(SWAP_EXACT_IN_FOT).selector


class Ticks:
    """A strategy that proposes one intent per tick, each made from that tick's market."""

    name = "scripted"

    def __init__(self, *makers: Callable[[MarketSnapshot], object]) -> None:
        self.makers = list(makers)

    def describe(self) -> str:
        return "one intent per tick (test)"

    def propose(self, market, portfolio):
        return [self.makers.pop(0)(market)] if self.makers else []


@pytest.fixture(scope="module")
def awkward(cw3, market, signer):
    tokens = deploy_awkward_tokens(
        cw3, market.dex, quote=market.dusd, fee_bps=FEE_BPS, depth=(DEPTH, DEPTH)
    )
    for token in (tokens.reset_approve, tokens.fee_on_transfer):
        fund(cw3, token, signer.address, 10_000 * E18, sender=market.dex.deployer)
    return tokens


def listed_with(cw3, market, allowlist, awkward, *, fee_declared: int | None) -> ActiveAllowlist:
    d = market.dex

    def entry(address, name, role, functions, **extra) -> AllowlistEntry:
        return AllowlistEntry(
            chain_id=d.chain_id,
            address=address,
            name=name,
            role=role,
            codehash=codehash(cw3.eth.get_code(address).to_0x_hex()),
            functions=functions,
            **extra,
        )

    entries = dict(allowlist.entries)
    token_fns, pair_fns = scopes.token_functions(), scopes.pair_functions()
    for e in (
        entry(awkward.reset_approve, "Tether-like USD (RUSD)", Role.TOKEN, token_fns),
        entry(
            awkward.fee_on_transfer,
            "Fee Token (FEE)",
            Role.TOKEN,
            token_fns,
            transfer_fee_bps=fee_declared,
        ),
        entry(awkward.reset_approve_pair, "UniswapV2Pair RUSD/DUSD", Role.POOL, pair_fns),
        entry(awkward.fee_on_transfer_pair, "UniswapV2Pair FEE/DUSD", Role.POOL, pair_fns),
    ):
        entries[e.address] = e
    return ActiveAllowlist(chain_id=d.chain_id, entries=entries)


@pytest.fixture(scope="module")
def listed(cw3, market, allowlist, awkward):
    return listed_with(cw3, market, allowlist, awkward, fee_declared=FEE_BPS)


def records(runtime, kind: str) -> list[dict]:
    lines = runtime.audit_path.read_text().splitlines()
    return [r["payload"] for r in map(json.loads, lines) if r["kind"] == kind]


def erc20(cw3, token):
    return contract(cw3, artifacts.demo_token(), token)


def after_fee(amount: int, bps: int = FEE_BPS) -> int:
    return amount - amount * bps // 10_000


# ------------------------------------------------------------------------ USDT style


def test_usdt_style_token_approved_twice_then_swapped(
    start_agent, cw3, market, signer, listed, awkward
):
    token, router = awkward.reset_approve, market.dex.router
    rusd = erc20(cw3, token)
    wanted, amount = 100 * E18, 200 * E18

    def sell_exact_out(m: MarketSnapshot) -> SwapExactOut:
        # The router is approved for the most the swap may take and takes less: an
        # allowance is left over.
        cost = m.quote_in([token, market.dusd], wanted)
        return SwapExactOut(
            token_in=token,
            token_out=market.dusd,
            amount_out=wanted,
            max_amount_in=cost * 1004 // 1000,
            reason="sell RUSD for exactly 100 DUSD",
        )

    def sell_exact_in(m: MarketSnapshot) -> SwapExactIn:
        # More than is left: approve 0 first, then the amount, then the swap.
        quote = m.quote_out([token, market.dusd], amount)
        return SwapExactIn(
            token_in=token,
            token_out=market.dusd,
            amount_in=amount,
            min_amount_out=quote * 995 // 1000,
            reason="sell 200 RUSD",
        )

    def buy(m: MarketSnapshot) -> SwapExactIn:
        # A buy is probed by selling back: that approve meets the allowance left too.
        quote = m.quote_out([market.dusd, token], amount)
        return SwapExactIn(
            token_in=market.dusd,
            token_out=token,
            amount_in=amount,
            min_amount_out=quote * 995 // 1000,
            reason="buy RUSD",
        )

    runtime = start_agent([Ticks(sell_exact_out, buy, sell_exact_in)], allowlist_override=listed)
    (first,) = runtime.agent.tick().intents
    assert first.status == "executed", first.refusals
    left = rusd.functions.allowance(signer.address, router).call()
    assert 0 < left < amount
    # The token really is USDT-style: a plain approve over what is left reverts.
    with pytest.raises(Exception, match="0xe9041040"):
        rusd.functions.approve(router, amount).call({"from": signer.address})

    (bought,) = runtime.agent.tick().intents
    assert bought.status == "executed", bought.refusals
    (probe,) = records(runtime, "round-trip")
    assert probe["verdict"]["allowed"], probe
    assert rusd.functions.allowance(signer.address, router).call() == left  # untouched

    before = rusd.functions.balanceOf(signer.address).call()
    (second,) = runtime.agent.tick().intents
    assert second.status == "executed", second.refusals
    assert len(second.plan) == 3, second.plan
    assert "to 0 first" in second.plan[0]
    assert len(second.tx_hashes) == 3
    assert rusd.functions.balanceOf(signer.address).call() == before - amount
    assert rusd.functions.allowance(signer.address, router).call() == 0  # all of it spent


# ------------------------------------------------------------------------ fee on transfer


def test_fee_on_transfer_token_sold_and_bought(start_agent, cw3, market, signer, listed, awkward):
    token = awkward.fee_on_transfer
    fee, dusd = erc20(cw3, token), erc20(cw3, market.dusd)
    amount = 100 * E18

    def sell(m: MarketSnapshot) -> SwapExactIn:
        # The pool receives the amount less the fee: quote what reaches it.
        quote = m.quote_out([token, market.dusd], after_fee(amount))
        return SwapExactIn(
            token_in=token,
            token_out=market.dusd,
            amount_in=amount,
            min_amount_out=quote * 995 // 1000,
            reason="sell 100 FEE",
        )

    bought_min: list[int] = []

    def buy(m: MarketSnapshot) -> SwapExactIn:
        # The agent receives what the pool pays less the fee.
        bought_min.append(after_fee(m.quote_out([market.dusd, token], amount)) * 995 // 1000)
        return SwapExactIn(
            token_in=market.dusd,
            token_out=token,
            amount_in=amount,
            min_amount_out=bought_min[-1],
            reason="buy FEE for 100 DUSD",
        )

    runtime = start_agent([Ticks(sell, buy)], allowlist_override=listed)
    fee_before, dusd_before = (c.functions.balanceOf(signer.address).call() for c in (fee, dusd))
    (sold,) = runtime.agent.tick().intents
    assert sold.status == "executed", sold.refusals
    assert fee.functions.balanceOf(signer.address).call() == fee_before - amount
    got = dusd.functions.balanceOf(signer.address).call() - dusd_before
    assert got > 0
    (bought,) = runtime.agent.tick().intents
    assert bought.status == "executed", bought.refusals
    received = fee.functions.balanceOf(signer.address).call() - (fee_before - amount)
    assert received >= bought_min[0]
    # Both swaps went through the router's fee-on-transfer variant.
    swaps = [
        c["data"][:10]
        for p in records(runtime, "plan")
        for c in p["calls"]
        if c["target"] == market.dex.router
    ]
    assert swaps == [SUPPORTING, SUPPORTING]
    # The buy was probed with a round trip that expected the fee on both legs, and passed.
    (probe,) = records(runtime, "round-trip")
    assert probe["verdict"]["allowed"], probe
    assert probe["probe"]["fees_bps"] > 200  # two pool fees and two transfer fees


def test_a_raised_fee_is_refused_in_simulation(start_agent, cw3, market, signer, listed, awkward):
    """The owner raises the fee to 20% after review: the buy, bounded by the declared 1%,
    would receive far less than its min-out. The fork shows it; nothing is signed."""
    token = awkward.fee_on_transfer
    amount = 100 * E18
    set_transfer_fee(cw3, token, 2_000, sender=market.dex.deployer)

    def buy(m: MarketSnapshot) -> SwapExactIn:
        return SwapExactIn(
            token_in=market.dusd,
            token_out=token,
            amount_in=amount,
            min_amount_out=after_fee(m.quote_out([market.dusd, token], amount)) * 995 // 1000,
            reason="buy FEE",
        )

    nonce = cw3.eth.get_transaction_count(signer.address)
    runtime = start_agent([Ticks(buy)], allowlist_override=listed)
    (intent,) = runtime.agent.tick().intents
    assert intent.status == "refused"
    assert intent.stage == "outcome"
    rules = {r.rule for r in intent.refusals}
    assert "deltas-within-intent" in rules, intent.refusals
    assert cw3.eth.get_transaction_count(signer.address) == nonce


def test_an_undeclared_fee_is_refused_in_simulation(
    start_agent, cw3, market, signer, allowlist, awkward
):
    """The same token with no fee declared on its entry: the planner sells it with the plain
    swap, whose pool receives less than the router sent and reverts. Fail closed."""
    token = awkward.fee_on_transfer
    undeclared = listed_with(cw3, market, allowlist, awkward, fee_declared=None)
    amount = 100 * E18

    def sell(m: MarketSnapshot) -> SwapExactIn:
        return SwapExactIn(
            token_in=token,
            token_out=market.dusd,
            amount_in=amount,
            min_amount_out=m.quote_out([token, market.dusd], amount) * 995 // 1000,
            reason="sell FEE",
        )

    nonce = cw3.eth.get_transaction_count(signer.address)
    runtime = start_agent([Ticks(sell)], allowlist_override=undeclared)
    (intent,) = runtime.agent.tick().intents
    assert intent.status == "refused", intent
    assert intent.stage == "outcome"
    assert intent.first_rule == "tx-succeeded", intent.refusals
    assert "UniswapV2: K" in intent.refusals[0].reason
    assert "(transfer_fee_bps)" in intent.refusals[0].reason  # how to declare a reviewed fee
    swaps = [
        c["data"][:10]
        for p in records(runtime, "plan")
        for c in p["calls"]
        if c["target"] == market.dex.router
    ]
    assert swaps == [PLAIN]
    assert cw3.eth.get_transaction_count(signer.address) == nonce


def test_a_fee_raised_within_the_slippage_margin_is_refused_by_the_round_trip(
    start_agent, cw3, market, signer, listed, awkward
):
    """Raised from 1% to 1.5%: a lenient min-out (the slippage bound's floor) still holds,
    so the swap itself would pass, but the round trip measures the fee on the buy, above
    what the entry declares, and refuses the buy before anything is signed."""
    token = awkward.fee_on_transfer
    amount = 100 * E18
    set_transfer_fee(cw3, token, 150, sender=market.dex.deployer)

    def buy(m: MarketSnapshot) -> SwapExactIn:
        return SwapExactIn(
            token_in=market.dusd,
            token_out=token,
            amount_in=amount,
            min_amount_out=after_fee(m.quote_out([market.dusd, token], amount)) * 9_901 // 10_000,
            reason="buy FEE",
        )

    nonce = cw3.eth.get_transaction_count(signer.address)
    runtime = start_agent([Ticks(buy)], allowlist_override=listed)
    (intent,) = runtime.agent.tick().intents
    assert intent.status == "refused", intent
    assert [r.rule for r in intent.refusals] == ["round-trip-sellable"]
    assert "keeps 150 bps of the transfer" in intent.refusals[0].reason
    assert "declares at most 100" in intent.refusals[0].reason
    assert cw3.eth.get_transaction_count(signer.address) == nonce
