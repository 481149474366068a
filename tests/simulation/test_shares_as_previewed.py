"""shares-as-previewed at the edges of its tolerance, in memory (tests/protocols/test_erc4626.py
runs it on real vaults): the edge passes, one share beyond is refused, on both sides."""

from __future__ import annotations

import pytest

from defiagent.execution.models import ExpectedDelta, PlannedCall, SharePreview
from defiagent.simulation.checks.shares_as_previewed import VAULT_SELECTORS, SharesAsPreviewed
from defiagent.simulation.models import SimulationOutcome, TokenMeta
from tests.simulation.test_checks import USD, ctx

AGENT = "0x000000000000000000000000000000000000A6E4"
VAULT = "0x8888888888888888888888888888888888888888"
DEPOSIT = "0x6e553f65"  # deposit(uint256,address)
WITHDRAW = "0xb460af94"  # withdraw(uint256,address,address)


def vault_call(side: str = "mint", *, preview: bool = True, data: str | None = None):
    return PlannedCall(
        intent_id="v1",
        intent_kind="vault-deposit" if side == "mint" else "vault-withdraw",
        target=VAULT,
        data=data or (DEPOSIT if side == "mint" else WITHDRAW) + "00" * 64,
        sender=AGENT,
        expected=[ExpectedDelta(token=USD, min_delta=-1), ExpectedDelta(token=VAULT, min_delta=0)],
        share_preview=SharePreview(vault=VAULT, data="0xef8b30f7", side=side) if preview else None,  # type: ignore[arg-type]
    )


def result(shares: int | None, delta: int, *, success: bool = True) -> SimulationOutcome:
    return SimulationOutcome(
        success=success,
        gas_used=90_000,
        block_number=7,
        deltas={VAULT: delta} if delta else {},
        sender=AGENT,
        previewed_shares=shares,
    )


def check(call, out, tolerance: int = 100):
    base = ctx(share_tolerance_bps=tolerance)
    tokens = {**base.tokens, VAULT: TokenMeta(symbol="vUSD", decimals=0)}
    return SharesAsPreviewed().check(call, out, base.model_copy(update={"tokens": tokens}))


@pytest.mark.parametrize(
    ("minted", "allowed"),
    [(10_100, True), (10_000, True), (9_900, True), (9_899, False), (0, False), (-1, False)],
)
def test_deposit_may_mint_at_most_the_tolerance_fewer_shares(minted, allowed):
    verdict = check(vault_call("mint"), result(10_000, minted))
    assert verdict.allowed is allowed
    if not allowed:
        assert verdict.rule == "shares-as-previewed"
        assert "previewDeposit promised 10000 vUSD" in verdict.reason
        assert "beyond the 100 bps tolerance" in verdict.reason


def test_deposit_reason_names_both_amounts_and_the_shortfall():
    verdict = check(vault_call("mint"), result(10_000, 9_899))
    assert verdict.reason == (
        "the deposit mints 9899 vUSD to the agent, but the vault's previewDeposit promised "
        "10000 vUSD on the same state: 101.00 bps fewer, beyond the 100 bps tolerance"
    )


@pytest.mark.parametrize(
    ("burnt", "allowed"),
    [(9_000, True), (10_000, True), (10_100, True), (10_101, False), (20_000, False)],
)
def test_withdraw_may_burn_at_most_the_tolerance_more_shares(burnt, allowed):
    verdict = check(vault_call("burn"), result(10_000, -burnt))
    assert verdict.allowed is allowed
    if not allowed:
        assert verdict.reason == (
            f"the withdraw burns {burnt} vUSD of the agent's shares, but the vault's "
            "previewWithdraw promised 10000 vUSD on the same state: "
            f"{(burnt - 10_000) * 10_000 / 10_000:,.2f} bps more, beyond the 100 bps tolerance"
        )


def test_zero_tolerance_means_exactly_the_preview():
    assert check(vault_call("mint"), result(10_000, 10_000), tolerance=0).allowed
    assert not check(vault_call("mint"), result(10_000, 9_999), tolerance=0).allowed
    assert check(vault_call("burn"), result(10_000, -10_000), tolerance=0).allowed
    assert not check(vault_call("burn"), result(10_000, -10_001), tolerance=0).allowed


def test_a_withdraw_previewed_free_that_burns_shares_is_refused():
    verdict = check(vault_call("burn"), result(0, -1))
    assert not verdict.allowed
    assert "an unbounded number of bps more" in verdict.reason
    assert check(vault_call("burn"), result(0, 0)).allowed


def test_unreadable_preview_is_refused():
    verdict = check(vault_call("mint"), result(None, 10_000))
    assert not verdict.allowed
    assert "could not be read on the fork" in verdict.reason
    assert VAULT in verdict.reason


def test_reverted_call_is_left_to_tx_succeeded():
    assert check(vault_call("mint"), result(None, 0, success=False)).allowed


def test_vault_delta_is_found_whatever_the_case_of_the_preview_address():
    call = vault_call("mint")
    assert call.share_preview is not None
    lower = call.model_copy(
        update={"share_preview": call.share_preview.model_copy(update={"vault": VAULT.lower()})}
    )
    assert check(lower, result(10_000, 10_000)).allowed


@pytest.mark.parametrize("selector", sorted(VAULT_SELECTORS))
def test_a_vault_call_without_its_preview_is_refused(selector):
    for data in (selector + "00" * 64, selector.upper().replace("0X", "0x") + "00" * 64):
        verdict = check(vault_call(preview=False, data=data), result(None, 10_000))
        assert not verdict.allowed
        assert "carries no share preview" in verdict.reason


def test_other_calls_are_not_concerned():
    assert {"0x6e553f65", "0x94bf804d", "0xb460af94", "0xba087652"} == VAULT_SELECTORS
    approve = "0x095ea7b3" + "00" * 64
    assert check(vault_call(preview=False, data=approve), result(None, 0)).allowed
    assert check(vault_call(preview=False, data="0x"), result(None, 0)).allowed
