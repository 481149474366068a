"""Reading and writing a Safe and its guard on chain (web3.py, raw transactions)."""

from __future__ import annotations

import time
from typing import Any

from eth_utils import keccak, to_checksum_address
from pydantic import BaseModel, ConfigDict
from web3 import Web3
from web3.exceptions import ContractLogicError, TimeExhausted

from defiagent.errors import InfraError, Refused
from defiagent.safe import artifacts
from defiagent.safe.rules import GuardConfig
from defiagent.types import Address

SENTINEL = "0x0000000000000000000000000000000000000001"  # Safe's linked-list head


class SafeRef(BaseModel):
    """Where the Safe, its guard module and the pinned MultiSendCallOnly are."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: Address
    guard: Address
    multi_send: Address


class SafeState(BaseModel):
    """What the chain holds now."""

    model_config = ConfigDict(frozen=True)

    owners: list[Address]
    threshold: int
    nonce: int
    module_enabled: bool
    agent: Address
    guard_safe: Address  # the Safe the guard serves (immutable)
    config_hash: str
    epoch: int
    config: GuardConfig | None  # read back from the last ConfigSet event; None before any
    codehashes: dict[str, str]  # role -> extcodehash now (safe, singleton, guard, multi_send)
    singleton: Address


def safe_contract(w3: Web3, address: str) -> Any:
    return w3.eth.contract(address=to_checksum_address(address), abi=artifacts.safe_singleton().abi)


def guard_contract(w3: Web3, address: str) -> Any:
    return w3.eth.contract(address=to_checksum_address(address), abi=artifacts.guard().abi)


def codehash(w3: Web3, address: str) -> str:
    return "0x" + keccak(bytes(w3.eth.get_code(to_checksum_address(address)))).hex()


def read_state(w3: Web3, ref: SafeRef) -> SafeState:
    """Owners, threshold, nonce, module, agent and guard configuration, as on chain now."""
    try:
        safe = safe_contract(w3, ref.address)
        guard = guard_contract(w3, ref.guard)
        singleton = to_checksum_address(
            "0x" + bytes(w3.eth.get_storage_at(to_checksum_address(ref.address), 0))[-20:].hex()
        )
        epoch = guard.functions.epoch().call()
        config = None
        if epoch:
            logs = guard.events.ConfigSet().get_logs(
                from_block=0, argument_filters={"epoch": epoch}
            )
            if logs:
                config = GuardConfig.decode(bytes(logs[-1]["args"]["config"]))
        return SafeState(
            owners=[to_checksum_address(o) for o in safe.functions.getOwners().call()],
            threshold=safe.functions.getThreshold().call(),
            nonce=safe.functions.nonce().call(),
            module_enabled=safe.functions.isModuleEnabled(ref.guard).call(),
            agent=guard.functions.agent().call(),
            guard_safe=guard.functions.safe().call(),
            config_hash="0x" + bytes(guard.functions.configHash().call()).hex(),
            epoch=epoch,
            config=config,
            codehashes={
                "safe": codehash(w3, ref.address),
                "singleton": codehash(w3, singleton),
                "guard": codehash(w3, ref.guard),
                "multi_send": codehash(w3, ref.multi_send),
            },
            singleton=singleton,
        )
    except (ContractLogicError, ValueError) as exc:
        raise Refused(
            f"the Safe {ref.address} or its guard {ref.guard} cannot be read as a defiagent "
            f"Safe: {exc}"
        ) from exc
    except OSError as exc:  # its text may hold the RPC URL (an API key): the type only
        raise InfraError(
            f"the RPC did not answer while reading the Safe ({type(exc).__name__})"
        ) from exc


def expected_codehashes(ref: SafeRef) -> dict[str, str]:
    """The code each part must run: the npm Safe 1.4.1 artifacts and our guard for this Safe."""
    return {
        "safe": artifacts.runtime_codehash(artifacts.safe_proxy()),
        "singleton": artifacts.runtime_codehash(artifacts.safe_singleton()),
        "guard": "0x" + keccak(artifacts.guard().runtime_for(ref.address)).hex(),
        "multi_send": artifacts.runtime_codehash(artifacts.multi_send_call_only()),
    }


def code_problems(state: SafeState, ref: SafeRef) -> list[str]:
    want = expected_codehashes(ref)
    problems = []
    for role, expected in want.items():
        if state.codehashes.get(role) != expected:
            problems.append(
                f"the {role.replace('_', ' ')} code has hash {state.codehashes.get(role)}, "
                f"not the expected {expected} (Safe 1.4.1 from npm, AllowlistGuard for this Safe)"
            )
    return problems


def send(
    w3: Web3, payer: Any, to: str | None, data: str, *, value: int = 0, gas: int | None = None
) -> Any:
    """Sign with `payer` (any defiagent Signer) and send; the receipt, or Refused on revert."""
    try:
        return _send(w3, payer, to, data, value=value, gas=gas)
    except OSError as exc:  # its text may hold the RPC URL (an API key): the type only
        raise InfraError(
            f"the RPC did not answer ({type(exc).__name__}); if a transaction was sent, "
            "check whether it was mined before sending again"
        ) from exc


def _send(w3: Web3, payer: Any, to: str | None, data: str, *, value: int, gas: int | None) -> Any:
    tx: dict[str, Any] = {
        "from": payer.address,
        "data": data,
        "value": value,
        "chainId": w3.eth.chain_id,
        "nonce": w3.eth.get_transaction_count(payer.address, "pending"),
    }
    if to is not None:
        tx["to"] = to_checksum_address(to)
    try:
        estimate = gas or int(w3.eth.estimate_gas(tx) * 1.3) + 50_000  # type: ignore[arg-type]
    except ContractLogicError as exc:
        raise Refused(f"the transaction would revert: {exc}") from exc
    base = w3.eth.get_block("latest").get("baseFeePerGas", 10**9)
    tx.update(
        {
            "type": 2,
            "gas": estimate,
            "maxPriorityFeePerGas": 10**9,
            "maxFeePerGas": 2 * int(base) + 10**9,
        }
    )
    tx.pop("from")
    if "to" not in tx:
        tx["to"] = b""
    signed = payer.sign_transaction(tx)
    try:
        tx_hash = w3.eth.send_raw_transaction(signed.raw)
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60, poll_latency=0.05)
    except TimeExhausted as exc:
        raise InfraError(f"transaction {signed.hash} was not mined within 60 s") from exc
    if receipt["status"] != 1:
        raise Refused(f"transaction {signed.hash} reverted on chain")
    return receipt


def wait_code(w3: Web3, address: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not w3.eth.get_code(to_checksum_address(address)):
        if time.monotonic() > deadline:
            raise InfraError(f"no code at {address}")
        time.sleep(0.05)
