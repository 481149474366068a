"""Outcome checks at the edges of their limits, and every branch of the fork-code pin.

test_checks.py shows each check refusing what it exists for; these pin the exact edge
(the cap itself passes, one more is refused), the legitimate cases next to each refusal,
and the fork-code check's handling of proxies, revoked entries and address case.
"""

from __future__ import annotations

import pytest
from eth_utils import to_checksum_address

from defiagent.allowlist.models import ActiveAllowlist, ProxyInfo, ProxyKind, Role
from defiagent.execution.models import ExpectedDelta
from defiagent.simulation.checks import describe
from defiagent.simulation.checks.deltas_within_intent import DeltasWithinIntent
from defiagent.simulation.checks.fork_code_pinned import ForkCodePinned
from defiagent.simulation.checks.gas_under_cap import GasUnderCap
from defiagent.simulation.checks.nothing_else_leaves import NothingElseLeaves
from defiagent.simulation.checks.round_trip_sellable import RoundTripConfig, RoundTripSellable
from defiagent.simulation.checks.touched_allowlisted import TouchedAllowlisted
from defiagent.simulation.models import ETH
from defiagent.simulation.round_trip import RoundTrip
from tests.simulation.conftest import entry
from tests.simulation.test_checks import (
    IMPL,
    ONE,
    PAIR,
    PROXY,
    ROUTER,
    TKN,
    USD,
    ctx,
    outcome,
    swap,
)

PINNED = "0x" + "00" * 32  # what tests.simulation.conftest.entry pins by default
IMPL_HASH = "0x" + "11" * 32  # the proxy's pinned implementation codehash in ctx()
OTHER = "0x" + "ee" * 32


def test_describe_lists_each_check_with_its_metadata():
    rows = {row["id"]: row for row in describe()}
    fork = rows["fork-code-pinned"]
    assert fork["severity"] == "critical"
    assert fork["rationale"] == ForkCodePinned.rationale
    assert fork["description"] == ForkCodePinned.description


# --- gas, deltas, leaks -------------------------------------------------------------------


def test_gas_cap_is_inclusive():
    assert GasUnderCap().check(swap(), outcome(gas_used=500_000), ctx(max_gas=500_000)).allowed
    over = GasUnderCap().check(swap(), outcome(gas_used=500_001), ctx(max_gas=500_000))
    assert not over.allowed
    assert over.reason


def test_a_receipt_at_exactly_the_minimum_passes():
    exact = outcome(deltas={USD: -10 * ONE, TKN: 19 * ONE})
    assert DeltasWithinIntent().check(swap(), exact, ctx()).allowed
    short = outcome(deltas={USD: -10 * ONE, TKN: 19 * ONE - 1})
    assert not DeltasWithinIntent().check(swap(), short, ctx()).allowed


def test_spending_exactly_the_maximum_passes():
    exact = outcome(deltas={USD: -10 * ONE, TKN: 20 * ONE})
    assert DeltasWithinIntent().check(swap(), exact, ctx()).allowed
    over = outcome(deltas={USD: -10 * ONE - 1, TKN: 20 * ONE})
    v = DeltasWithinIntent().check(swap(), over, ctx())
    assert "spends 10.000000000000000001 DUSD, but the intent allows at most 10 DUSD" in v.reason


def test_a_zero_minimum_refuses_a_loss_and_says_loses():
    call = swap(expected=[ExpectedDelta(token=TKN, min_delta=0)])
    assert DeltasWithinIntent().check(call, outcome(deltas={TKN: 0}), ctx()).allowed
    v = DeltasWithinIntent().check(call, outcome(deltas={TKN: -1}), ctx())
    assert v.reason == (
        "the agent loses 0.000000000000000001 DTKN, but the intent requires at least 0 DTKN"
    )


def test_a_positive_minimum_with_a_loss_also_says_loses():
    v = DeltasWithinIntent().check(swap(), outcome(deltas={USD: -10 * ONE, TKN: -ONE}), ctx())
    assert "the agent loses 1 DTKN, but the intent requires at least 19 DTKN" in v.reason


def test_a_negative_minimum_is_a_spending_limit():
    call = swap(expected=[ExpectedDelta(token=USD, min_delta=-1)])
    v = DeltasWithinIntent().check(call, outcome(deltas={USD: -2}), ctx())
    assert v.reason.startswith("the agent spends")


def test_eth_expected_by_none_token():
    call = swap(expected=[ExpectedDelta(token=None, min_delta=-ONE)])
    assert DeltasWithinIntent().check(call, outcome(deltas={ETH: -ONE}), ctx()).allowed
    assert NothingElseLeaves().check(call, outcome(deltas={ETH: -ONE}), ctx()).allowed
    v = DeltasWithinIntent().check(call, outcome(deltas={ETH: -ONE - 1}), ctx())
    assert "1.000000000000000001 ETH" in v.reason


def test_named_assets_match_whatever_their_case():
    lower = swap(
        expected=[
            ExpectedDelta(token=USD.lower(), min_delta=-10 * ONE),
            ExpectedDelta(token=TKN.lower(), min_delta=19 * ONE),
        ]
    )
    assert NothingElseLeaves().check(lower, outcome(), ctx()).allowed


def test_every_leak_is_listed():
    other = "0x8888888888888888888888888888888888888888"
    deltas = {USD: -10 * ONE, TKN: 20 * ONE, ETH: -1, other: -2}
    v = NothingElseLeaves().check(swap(), outcome(deltas=deltas), ctx())
    assert v.reason == (
        f"2 base units of token {other} leaves the agent; 0.000000000000000001 ETH leaves "
        "the agent, which the intent does not allow"
    )


def test_an_allowlisted_token_without_metadata_is_named_by_its_entry():
    bare = ctx().model_copy(update={"tokens": {}})
    call = swap(expected=[])
    v = NothingElseLeaves().check(call, outcome(deltas={USD: -5}), bare)
    assert (
        v.reason
        == f"5 base units of Demo USD ({USD}) leaves the agent, which the intent does not allow"
    )


# --- touched-allowlisted ------------------------------------------------------------------


def test_touched_contracts_need_an_entry_or_the_targets_callee_list():
    assert TouchedAllowlisted().check(swap(), outcome(), ctx()).allowed
    stranger = "0x9999999999999999999999999999999999999999"
    v = TouchedAllowlisted().check(swap(), outcome(touched=[ROUTER, stranger]), ctx())
    assert not v.allowed
    assert stranger in v.reason
    # a call to a token (no callees of its own) may not enter the router's pair
    v = TouchedAllowlisted().check(swap(target=USD), outcome(touched=[USD, PAIR]), ctx())
    assert not v.allowed
    assert PAIR in v.reason


# --- fork-code-pinned ---------------------------------------------------------------------


def hashes(**overrides: str) -> dict[str, str]:
    base = dict.fromkeys([ROUTER, PAIR, USD, TKN], PINNED)
    return base | overrides


def fork(**extra):
    return ForkCodePinned().check(swap(), outcome(**extra), ctx())


def test_fork_code_matching_the_pins_passes_in_any_case():
    assert fork().allowed
    upper = {a.lower(): h.upper().replace("0X", "0x") for a, h in hashes().items()}
    assert fork(fork_codehashes=upper).allowed


def test_fork_code_unread_is_refused():
    v = fork(fork_codehashes=None)
    assert v.reason == (
        "the simulation did not read the code it ran on the fork, so it cannot be shown to "
        "be the pinned code"
    )


def test_fork_code_of_a_touched_entry_not_read_is_refused():
    unread = {a: h for a, h in hashes().items() if a != USD}
    v = fork(fork_codehashes=unread)
    assert v.reason == f"the code of Demo USD ({USD}) on the fork at block 7 was not read"


def test_fork_code_differing_from_the_pin_is_refused():
    v = fork(fork_codehashes=hashes(**{TKN: OTHER}))
    assert v.reason.startswith(
        f"the fork at block 7 ran code for Demo Token ({TKN}) with codehash {OTHER}, not the "
        f"pinned {PINNED}"
    )


def test_fork_code_of_a_revoked_entry_is_not_judged_as_pinned():
    c = ctx()
    entries = dict(c.allowlist.entries)
    entries[TKN] = entries[TKN].model_copy(update={"revoked": True})
    revoked = c.model_copy(update={"allowlist": ActiveAllowlist(chain_id=31337, entries=entries)})
    out = outcome(fork_codehashes=hashes(**{TKN: OTHER}))
    assert ForkCodePinned().check(swap(), out, revoked).allowed


def proxy_outcome(impl_hash: str | None = IMPL_HASH, used: list[str] | None = None, **extra):
    codes = hashes(**{PROXY: PINNED})
    if impl_hash is not None:
        codes[IMPL] = impl_hash
    return outcome(
        touched=[ROUTER, PAIR, USD, TKN, PROXY, IMPL],
        fork_codehashes=codes,
        delegations={PROXY: used if used is not None else [IMPL]},
        **extra,
    )


def test_a_proxy_running_its_pinned_implementation_passes():
    assert ForkCodePinned().check(swap(), proxy_outcome(), ctx()).allowed
    lower = proxy_outcome(used=[IMPL.lower()], impl_hash=IMPL_HASH.upper().replace("0X", "0x"))
    assert ForkCodePinned().check(swap(), lower, ctx()).allowed


def test_delegations_keyed_in_another_case_are_still_found():
    out = proxy_outcome()
    out = out.model_copy(update={"delegations": {PROXY.lower(): [EVIL_IMPL]}})
    v = ForkCodePinned().check(swap(), out, ctx())
    assert f"runs {EVIL_IMPL}, not its pinned implementation {IMPL}" in v.reason


EVIL_IMPL = "0xaAaAaAaaAaAaAaaAaAAAAAAAAaaaAaAaAaaAaaAa"


def test_a_proxy_running_another_implementation_is_refused():
    v = ForkCodePinned().check(swap(), proxy_outcome(used=[IMPL, EVIL_IMPL]), ctx())
    assert v.reason == (
        f"on the fork at block 7, proxy Proxied token ({PROXY}) runs {EVIL_IMPL}, not its "
        f"pinned implementation {IMPL}"
    )


def test_the_pinned_implementation_with_other_code_is_refused():
    v = ForkCodePinned().check(swap(), proxy_outcome(impl_hash=OTHER), ctx())
    assert v.reason == (
        f"the fork at block 7 ran code for the implementation {IMPL} behind proxy Proxied "
        f"token ({PROXY}) with codehash {OTHER}, not the pinned {IMPL_HASH}"
    )


def test_the_pinned_implementation_unread_is_refused():
    v = ForkCodePinned().check(swap(), proxy_outcome(impl_hash=None), ctx())
    assert "with codehash unread, not the pinned" in v.reason


def test_implementation_of_a_revoked_proxy_is_not_required():
    c = ctx()
    entries = dict(c.allowlist.entries)
    entries[PROXY] = entries[PROXY].model_copy(update={"revoked": True})
    revoked = c.model_copy(update={"allowlist": ActiveAllowlist(chain_id=31337, entries=entries)})
    assert ForkCodePinned().check(swap(), proxy_outcome(impl_hash=OTHER), revoked).allowed


def test_two_proxies_sharing_one_implementation_both_bind_it():
    second = "0x6767676767676767676767676767676767676767"
    c = ctx()
    entries = dict(c.allowlist.entries)
    entries[second] = entry(
        second,
        "Second proxy",
        Role.TOKEN,
        proxy=ProxyInfo(kind=ProxyKind.EIP1967, implementation=IMPL, implementation_codehash=OTHER),
    )
    both = c.model_copy(update={"allowlist": ActiveAllowlist(chain_id=31337, entries=entries)})
    v = ForkCodePinned().check(swap(), proxy_outcome(), both)
    assert "behind proxy Second proxy" in v.reason


# --- round-trip-sellable ------------------------------------------------------------------


def probe(passed: bool, reason: str = "sold back 99.7%") -> RoundTrip:
    return RoundTrip(sellable=True, passed=passed, reason=reason)


def test_round_trip_judgement():
    rule = RoundTripSellable()
    ok = rule.judge(probe(True))
    assert ok.allowed
    assert ok.rule == "round-trip-sellable"
    assert ok.reason == "sold back 99.7%"
    bad = rule.judge(probe(False, "the sale back reverts"))
    assert not bad.allowed
    assert bad.rule == "round-trip-sellable"
    assert bad.reason == "the sale back reverts"
    missing = rule.judge(None)
    assert not missing.allowed
    assert missing.rule == "round-trip-sellable"
    assert missing.reason == "the round-trip probe did not run, so the buy is refused"


@pytest.mark.parametrize(
    ("config", "line"),
    [
        (
            RoundTripConfig(),
            "RoundTripSellable: every buy must sell back on the fork losing at most 100 bps "
            "beyond the pools' fees",
        ),
        (
            RoundTripConfig(max_round_trip_loss_bps=250),
            "RoundTripSellable: every buy must sell back on the fork losing at most 250 bps "
            "beyond the pools' fees",
        ),
        (
            RoundTripConfig(enabled=False),
            "RoundTripSellable: disabled: buys are not probed for a round trip",
        ),
    ],
)
def test_round_trip_explains_its_setting(config, line):
    assert RoundTripSellable(config).explain() == line
    assert RoundTripSellable.config_section() == "guard.honeypot"


def test_an_unnamed_asset_that_does_not_move_is_not_a_leak():
    deltas = {USD: -10 * ONE, TKN: 20 * ONE, ETH: 0}
    assert NothingElseLeaves().check(swap(), outcome(deltas=deltas), ctx()).allowed


def test_a_call_to_an_unknown_target_has_no_callees():
    stranger = "0x9999999999999999999999999999999999999999"
    v = TouchedAllowlisted().check(swap(target=stranger), outcome(touched=[stranger]), ctx())
    assert not v.allowed


LETTERED = to_checksum_address("0xabcdef0000000000000000000000000000000001")  # mixed case


def test_fork_codehashes_keyed_in_another_case_are_found():
    c = ctx()
    entries = dict(c.allowlist.entries)
    entries[LETTERED] = entry(LETTERED, "Lettered", Role.TOKEN)
    lettered = c.model_copy(update={"allowlist": ActiveAllowlist(chain_id=31337, entries=entries)})
    touched = [ROUTER, PAIR, USD, TKN, LETTERED]
    ok = outcome(touched=touched, fork_codehashes=hashes() | {LETTERED.lower(): PINNED})
    assert ForkCodePinned().check(swap(), ok, lettered).allowed
    bad = outcome(touched=touched, fork_codehashes=hashes() | {LETTERED.lower(): OTHER})
    v = ForkCodePinned().check(swap(), bad, lettered)
    assert f"ran code for Lettered ({LETTERED}) with codehash {OTHER}" in v.reason
