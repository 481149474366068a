"""Send a call to the guard signed with the agent's key, past every off-chain check.

What an attacker holding the agent's key can do: the tests and `defiagent demo --safe` use
it to show each forged call mined and reverted on chain by the guard.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from web3 import Web3
from web3.types import RPCEndpoint

from defiagent.safe.batch import execute_data
from defiagent.safe.chain import SafeRef
from defiagent.safe.errors import guard_error


class ForgedResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    tx_hash: str
    mined: bool
    status: int  # 1 ok, 0 reverted on chain
    error: str | None  # the guard's error name, when it refused
    reason: str


def send_forged(
    w3: Web3,
    key: Any,
    ref: SafeRef,
    to: str,
    value: int,
    data: str,
    operation: int = 0,
    *,
    gas: int = 600_000,
    names: dict[str, str] | None = None,
) -> ForgedResult:
    """Sign `execute(to, value, data, operation)` with `key` and send it with a fixed gas
    limit (no estimate, which would refuse it off chain): it is mined, and the guard's
    revert reason is read by replaying it at the block before."""
    call = execute_data(Web3.to_checksum_address(to), value, data, operation)
    base = w3.eth.get_block("latest").get("baseFeePerGas", 10**9)
    tx = {
        "type": 2,
        "chainId": w3.eth.chain_id,
        "nonce": w3.eth.get_transaction_count(key.address, "pending"),
        "to": ref.guard,
        "value": 0,
        "data": call,
        "gas": gas,
        "maxPriorityFeePerGas": 10**9,
        "maxFeePerGas": 2 * int(base) + 10**9,
    }
    signed = key.sign_transaction(tx)
    tx_hash = w3.eth.send_raw_transaction(signed.raw)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.05)
    if receipt["status"] == 1:
        return ForgedResult(
            tx_hash=signed.hash, mined=True, status=1, error=None, reason="executed"
        )
    replay = {"from": key.address, "to": ref.guard, "data": call, "gas": gas}
    answer: dict[str, Any] = dict(
        w3.provider.make_request(RPCEndpoint("eth_call"), [replay, hex(receipt["blockNumber"] - 1)])
    )
    data_out = (answer.get("error") or {}).get("data")
    if isinstance(data_out, dict):
        data_out = data_out.get("data")
    decoded = guard_error(data_out, names) if isinstance(data_out, str) else None
    return ForgedResult(
        tx_hash=signed.hash,
        mined=True,
        status=0,
        error=decoded[0] if decoded else None,
        reason=decoded[1] if decoded else f"reverted ({data_out})",
    )
