"""The agent loop probes every buy with a round trip on the fork before it is sent.

Needs the round-trip step in defiagent/agent/loop.py `_handle` (after the outcome checks)
and `round_trip=cfg.guard.honeypot` in defiagent/agent/runtime.py.
"""

from __future__ import annotations

import json

import pytest

from defiagent.agent import scopes
from defiagent.agent.observe import codehash
from defiagent.allowlist.models import ActiveAllowlist, AllowlistEntry, Role
from defiagent.devchain.deploy import add_liquidity
from defiagent.protocols.uniswap_v2 import math as v2
from defiagent.strategy.intents import SwapExactIn
from tests.agent.conftest import Scripted
from tests.allowlist.support import compiled, contract, deploy, transact

pytestmark = pytest.mark.slow

E18 = 10**18


def _records(runtime, kind: str) -> list[dict]:
    lines = runtime.audit_path.read_text().splitlines()
    return [r["payload"] for r in map(json.loads, lines) if r["kind"] == kind]


def test_an_honest_buy_is_probed_then_sent(start_agent, market):
    quote = v2.get_amount_out(100 * E18, 1_000_000 * E18, 2_000_000 * E18)
    buy = SwapExactIn(
        token_in=market.dusd,
        token_out=market.dtkn,
        amount_in=100 * E18,
        min_amount_out=quote * 995 // 1000,
        reason="buy DTKN",
    )
    runtime = start_agent([Scripted(buy)])
    (intent,) = runtime.agent.tick().intents
    assert intent.status == "executed", intent.refusals
    (probe,) = _records(runtime, "round-trip")
    assert probe["verdict"]["allowed"]
    assert probe["probe"]["loss_bps_beyond_fees"] == 0


def test_a_honeypot_buy_is_refused_before_anything_is_signed(
    start_agent, cw3, market, signer, allowlist
):
    d = market.dex
    trap = deploy(
        cw3, contract(compiled("honeypot/Honeypot.sol"), "SellBlockToken"), "T", "TRAP", 10**27
    )
    pair = add_liquidity(cw3, d, market.dusd, trap.address, 10**24, 10**24)
    transact(cw3, trap.functions.setPair(pair), d.deployer)

    def entry(address: str, name: str, role: Role, functions) -> AllowlistEntry:
        code = cw3.eth.get_code(address).to_0x_hex()
        return AllowlistEntry(
            chain_id=d.chain_id,
            address=address,
            name=name,
            role=role,
            codehash=codehash(code),
            functions=functions,
        )

    entries = dict(allowlist.entries)
    for e in (
        entry(trap.address, "TRAP", Role.TOKEN, scopes.token_functions()),
        entry(pair, "UniswapV2Pair DUSD/TRAP", Role.POOL, scopes.pair_functions()),
    ):
        entries[e.address] = e
    listed = ActiveAllowlist(chain_id=d.chain_id, entries=entries)
    quote = v2.get_amount_out(100 * E18, 10**24, 10**24)
    buy = SwapExactIn(
        token_in=market.dusd,
        token_out=trap.address,
        amount_in=100 * E18,
        min_amount_out=quote * 995 // 1000,
        reason="buy TRAP",
    )
    before = cw3.eth.get_transaction_count(signer.address)
    runtime = start_agent([Scripted(buy)], allowlist_override=listed)
    (intent,) = runtime.agent.tick().intents
    assert intent.status == "refused"
    assert intent.stage == "outcome"
    assert [r.rule for r in intent.refusals] == ["round-trip-sellable"]
    assert "TRAP cannot be sold" in intent.refusals[0].reason
    assert cw3.eth.get_transaction_count(signer.address) == before  # nothing signed or sent
    assert runtime.metrics.value("defiagent_refusals_total", rule="round-trip-sellable") == 1
    (refused,) = _records(runtime, "refused")
    assert refused["refusals"][0]["rule"] == "round-trip-sellable"
