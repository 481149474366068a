"""Owner-side changes to the guard that are not rule syncs: swapping the agent's key.

Key rotation (defiagent.signing.rotation) calls `swap_agent`: the guard's `setAgent` is a
Safe transaction, so it needs the Safe's threshold of owner signatures like any other
change. The old key can do nothing through the guard from the block it is mined in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_utils import to_checksum_address
from web3 import Web3

from defiagent.errors import Refused
from defiagent.safe.chain import SafeRef, read_state, send
from defiagent.safe.safe_tx import OwnerSignature, SafeTx, call_data


def swap_agent_tx(w3: Web3, ref: SafeRef, new_agent: str) -> SafeTx:
    """The Safe transaction that makes `new_agent` the guard's only caller (to be signed)."""
    state = read_state(w3, ref)
    new_agent = to_checksum_address(new_agent)
    if new_agent in state.owners:
        raise Refused(f"{new_agent} is an owner of the Safe: an agent key must not be one")
    return SafeTx(
        chain_id=w3.eth.chain_id,
        safe=ref.address,
        to=ref.guard,
        data=call_data("setAgent(address)", ["address"], [new_agent]),
        nonce=state.nonce,
    )


def swap_agent(
    w3: Web3,
    ref: SafeRef,
    new_agent: str,
    *,
    owners: Sequence[Any] = (),
    signatures: Sequence[OwnerSignature] = (),
    payer: Any,
) -> str:
    """Swap the guard's agent key: sign with `owners` (signers with sign_typed_data) and/or use
    `signatures` already collected over `swap_agent_tx(...)`, then send with `payer`.
    Returns the transaction hash; Refused under the threshold or if the swap did not hold."""
    tx = swap_agent_tx(w3, ref, new_agent)
    collected = [*signatures, *(tx.sign(o) for o in owners)]
    state = read_state(w3, ref)
    receipt = send(w3, payer, ref.address, tx.exec_data(collected, state.owners, state.threshold))
    if read_state(w3, ref).agent.lower() != new_agent.lower():
        raise Refused("the Safe transaction was mined but the guard's agent did not change")
    return "0x" + bytes(receipt["transactionHash"]).hex()
