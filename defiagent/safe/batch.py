"""A plan's calls as one transaction from the Safe, through the guard module.

The planner plans for the Safe (it holds the funds and receives the proceeds); the
off-chain guard judges each of those calls as usual; then they become one call of the
agent's key to `AllowlistGuard.execute`: the call itself, or a MultiSendCallOnly batch
(approve and swap) by DELEGATECALL. It is simulated as that one transaction from the
agent's key, and the outcome checks read the Safe's balances and approvals (`holder`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eth_abi import encode as abi_encode
from eth_utils import function_signature_to_4byte_selector, to_checksum_address

from defiagent.allowlist.models import ActiveAllowlist, AllowlistEntry, Role
from defiagent.execution.models import ExpectedDelta, PlannedCall
from defiagent.safe.chain import SafeRef
from defiagent.safe.errors import guard_error
from defiagent.safe.multisend import encode_multisend
from defiagent.safe.safe_tx import CALL, DELEGATECALL
from defiagent.simulation.models import SimulationOutcome

EXECUTE = "execute(address,uint256,bytes,uint8)"
EXECUTE_SELECTOR = function_signature_to_4byte_selector(EXECUTE)


def execute_data(to: str, value: int, data: str, operation: int) -> str:
    args = abi_encode(
        ["address", "uint256", "bytes", "uint8"], [to, value, bytes.fromhex(data[2:]), operation]
    )
    return "0x" + (EXECUTE_SELECTOR + args).hex()


def _merge_expected(calls: Sequence[PlannedCall]) -> list[ExpectedDelta]:
    merged: dict[str | None, int] = {}
    for call in calls:
        for e in call.expected:
            key = to_checksum_address(e.token) if e.token else None
            merged[key] = merged.get(key, 0) + e.min_delta
    return [ExpectedDelta(token=t, min_delta=d) for t, d in merged.items()]


def _merge_approvals(calls: Sequence[PlannedCall]) -> dict[str, int]:
    merged: dict[str, int] = {}
    for call in calls:
        for key, cap in call.allowed_approvals.items():
            merged[key] = max(merged.get(key, 0), cap)
    return merged


@dataclass(frozen=True)
class SafeExecution:
    """How the loop turns a guarded plan into the one transaction the agent's key signs."""

    ref: SafeRef
    agent_key: str  # the EOA that signs (the guard's `agent`), not the Safe
    # The allowlist plus the Safe's own contracts (proxy, singleton, guard, MultiSendCallOnly)
    # pinned to the code they must run: what the outcome checks compare the trace with.
    check_allowlist: ActiveAllowlist

    def explain(self, outcome: SimulationOutcome) -> SimulationOutcome:
        """A simulation the on-chain guard reverted, with the guard's reason in words."""
        if outcome.success:
            return outcome
        decoded = guard_error(outcome.revert_data)
        if decoded is None:
            return outcome
        return outcome.model_copy(update={"revert_reason": decoded[1]})

    def wrap(self, calls: Sequence[PlannedCall]) -> PlannedCall:
        if not calls:
            raise ValueError("nothing to wrap")
        if len(calls) == 1:
            only = calls[0]
            data = execute_data(only.target, only.value, only.data, CALL)
        else:
            batch = encode_multisend([(c.target, c.value, c.data) for c in calls])
            data = execute_data(self.ref.multi_send, 0, batch, DELEGATECALL)
        first = calls[0]
        return PlannedCall(
            intent_id=first.intent_id,
            intent_kind=first.intent_kind,
            target=self.ref.guard,
            data=data,
            value=0,
            sender=self.agent_key,
            holder=self.ref.address,
            expected=_merge_expected(calls),
            allowed_approvals=_merge_approvals(calls),
            # A vault call's preview (a plan holds at most one): read before the whole batch,
            # which an approve inside it does not change, and compared with the Safe's shares.
            share_preview=next((c.share_preview for c in reversed(calls) if c.share_preview), None),
            description="from the Safe, in one transaction: "
            + "; ".join(c.description or c.intent_kind for c in calls),
        )


def infra_entries(ref: SafeRef, singleton: str, chain_id: int) -> list[AllowlistEntry]:
    """The Safe's own contracts as pinned entries (never callable: no functions)."""
    from defiagent.safe.chain import expected_codehashes

    hashes = expected_codehashes(ref)
    named = [
        (ref.address, "Safe proxy (defiagent)", hashes["safe"]),
        (singleton, "Safe 1.4.1 singleton", hashes["singleton"]),
        (ref.guard, "AllowlistGuard module", hashes["guard"]),
        (ref.multi_send, "MultiSendCallOnly 1.4.1", hashes["multi_send"]),
    ]
    return [
        AllowlistEntry(
            chain_id=chain_id,
            address=address,
            name=name,
            role=Role.OTHER,
            codehash=codehash,
            notes="pinned by defiagent.safe at agent start, not a reviewed entry",
        )
        for address, name, codehash in named
    ]


def with_infra(allowlist: ActiveAllowlist, entries: Sequence[AllowlistEntry]) -> ActiveAllowlist:
    merged = dict(allowlist.entries)
    for e in entries:
        merged.setdefault(e.address, e)
    return ActiveAllowlist(chain_id=allowlist.chain_id, entries=merged)
