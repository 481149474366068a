"""Folding prestateTracer diffs into state overrides: what the next call's trace runs on."""

from __future__ import annotations

import pytest

from defiagent.errors import InfraError
from defiagent.simulation.simulator import _apply_diff

A, B = "0x" + "aa" * 20, "0x" + "bb" * 20
S1, S2 = "0x" + "01" * 32, "0x" + "02" * 32
ZERO = "0x" + "00" * 32


def test_changed_slots_balance_and_nonce_carry_over():
    diff = {
        "pre": {A: {"balance": "0x1", "nonce": 0}, B: {"storage": {S1: "0x05"}}},
        "post": {A: {"balance": "0x0", "nonce": 1}, B: {"storage": {S1: "0x07"}}},
    }
    out = _apply_diff({}, diff)
    assert out[A] == {"balance": "0x0", "nonce": "0x1"}
    assert out[B] == {"stateDiff": {S1: "0x07"}}


def test_a_cleared_slot_becomes_zero_not_forgotten():
    diff = {
        "pre": {B: {"storage": {S1: "0x05", S2: "0x09"}}},
        "post": {B: {"storage": {S2: "0x01"}}},
    }
    out = _apply_diff({B: {"stateDiff": {S1: "0x05"}}}, diff)
    assert out[B]["stateDiff"] == {S1: ZERO, S2: "0x01"}


def test_later_diffs_override_earlier_ones_without_mutating_them():
    first = _apply_diff(
        {}, {"pre": {B: {"storage": {S1: "0x0"}}}, "post": {B: {"storage": {S1: "0x05"}}}}
    )
    second = _apply_diff(
        first, {"pre": {B: {"storage": {S1: "0x05"}}}, "post": {B: {"storage": {S1: "0x06"}}}}
    )
    assert first[B]["stateDiff"][S1] == "0x05"
    assert second[B]["stateDiff"][S1] == "0x06"


def test_a_deleted_account_is_emptied():
    out = _apply_diff({}, {"pre": {A: {"balance": "0x5", "code": "0x60"}}, "post": {}})
    assert out[A] == {"balance": "0x0", "nonce": "0x0", "code": "0x", "state": {}}


def test_an_unreadable_diff_fails_closed():
    with pytest.raises(InfraError):
        _apply_diff({}, {"unexpected": True})
