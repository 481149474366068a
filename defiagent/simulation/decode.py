"""Read what a simulated call did from its raw logs, revert bytes and call trace."""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import keccak
from eth_utils import to_checksum_address as _to_checksum_address

from defiagent.simulation.models import ETH, ApprovalChange, Log

# A keccak per call: the same few addresses come back in every trace and log.
to_checksum_address = lru_cache(maxsize=4096)(_to_checksum_address)

TRANSFER = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
APPROVAL = "0x" + keccak(text="Approval(address,address,uint256)").hex()
APPROVAL_FOR_ALL = "0x" + keccak(text="ApprovalForAll(address,address,bool)").hex()
# eth_simulateV1 with traceTransfers reports native ETH moves as Transfer logs from here.
ETH_PSEUDO_TOKEN = "0x" + "ee" * 20
MAX_UINT = 2**256 - 1

_ERROR_STRING = bytes.fromhex("08c379a0")  # Error(string)
_PANIC = bytes.fromhex("4e487b71")  # Panic(uint256)
_PANIC_CODES = {
    0x01: "assertion failed",
    0x11: "arithmetic overflow or underflow",
    0x12: "division by zero",
    0x21: "invalid enum value",
    0x31: "pop on an empty array",
    0x32: "array index out of bounds",
    0x41: "out of memory",
    0x51: "call to an uninitialised function",
}


def topic_address(topic: str) -> str:
    return to_checksum_address("0x" + topic[-40:])


def _word(data: str) -> int:
    raw = data.removeprefix("0x")
    return int(raw[:64], 16) if raw else 0


def revert_reason(data: str | None, fallback: str | None = None) -> str:
    """A readable reason from revert bytes: Error(string), Panic(code) or a custom error."""
    raw = bytes.fromhex((data or "0x").removeprefix("0x"))
    if raw[:4] == _ERROR_STRING:
        try:
            message: str = abi_decode(["string"], raw[4:])[0]
            return message
        except Exception:
            return "reverted with a malformed Error(string)"
    if raw[:4] == _PANIC and len(raw) >= 36:
        code = int.from_bytes(raw[4:36], "big")
        return f"panic 0x{code:02x} ({_PANIC_CODES.get(code, 'unknown panic code')})"
    if len(raw) >= 4:
        return f"reverted with custom error 0x{raw[:4].hex()}"
    return fallback or "reverted without a reason"


def split_logs(raw_logs: list[dict[str, Any]]) -> tuple[list[Log], list[tuple[str, str, int]]]:
    """Real contract logs, and native ETH transfers (from, to, wei) reported by traceTransfers."""
    logs: list[Log] = []
    eth: list[tuple[str, str, int]] = []
    for item in raw_logs:
        address = item["address"].lower()
        topics = item.get("topics") or []
        if address == ETH_PSEUDO_TOKEN:
            if len(topics) == 3 and topics[0] == TRANSFER:
                eth.append(
                    (topic_address(topics[1]), topic_address(topics[2]), _word(item["data"]))
                )
            continue
        logs.append(Log(address=address, topics=topics, data=item.get("data") or "0x"))
    return logs, eth


def deltas_from_logs(
    logs: list[Log], eth_transfers: list[tuple[str, str, int]], agent: str
) -> dict[str, int]:
    """Signed change per asset for the agent, as the Transfer logs tell it."""
    deltas: dict[str, int] = defaultdict(int)
    agent = to_checksum_address(agent)
    for src, dst, amount in eth_transfers:
        if src == agent:
            deltas[ETH] -= amount
        if dst == agent:
            deltas[ETH] += amount
    for log in logs:
        if not log.topics or log.topics[0] != TRANSFER or len(log.topics) not in (3, 4):
            continue
        # ERC-20 puts the amount in data; ERC-721 indexes the token id: one item moves.
        amount = _word(log.data) if len(log.topics) == 3 else 1
        src, dst = topic_address(log.topics[1]), topic_address(log.topics[2])
        if src == agent:
            deltas[log.address] -= amount
        if dst == agent:
            deltas[log.address] += amount
    return {k: v for k, v in deltas.items() if v}


def approvals_from_logs(logs: list[Log], agent: str) -> list[ApprovalChange]:
    """Every approval the agent granted: ERC-20 amounts, ERC-721 and operator approvals."""
    agent = to_checksum_address(agent)
    found: list[ApprovalChange] = []
    for log in logs:
        if not log.topics or len(log.topics) < 3:
            continue
        kind = log.topics[0]
        if kind not in (APPROVAL, APPROVAL_FOR_ALL):
            continue
        owner = topic_address(log.topics[1])
        if owner != agent:
            continue
        spender = topic_address(log.topics[2])
        if kind == APPROVAL_FOR_ALL:
            if not _word(log.data):  # revoking an operator is not a grant
                continue
            allowance = MAX_UINT
        elif len(log.topics) == 4:  # ERC-721 approve(tokenId): hands over an item
            allowance = MAX_UINT
        else:
            allowance = _word(log.data)
        found.append(
            ApprovalChange(token=log.address, owner=owner, spender=spender, allowance=allowance)
        )
    return found


def _is_precompile(address: str) -> bool:
    value = int(address, 16)
    return 0 < value <= 0x11 or value == 0x100  # 0x01-0x11 (through Prague), P256VERIFY


def trace_targets(frame: dict[str, Any]) -> tuple[list[str], list[str]]:
    """From a callTracer tree: (addresses called, addresses created), in first-seen order."""
    called: dict[str, None] = {}
    created: dict[str, None] = {}
    stack = [frame]
    while stack:
        node = stack.pop()
        to = node.get("to")
        if to and not _is_precompile(to):
            kind = (node.get("type") or "CALL").upper()
            target = created if kind.startswith("CREATE") else called
            target.setdefault(to_checksum_address(to), None)
        stack.extend(reversed(node.get("calls") or []))
    return list(called), list(created)
