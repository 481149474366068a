"""`defiagent signer rotate`: move everything from the signer's key to a new one, then retire it.

In order, every step recorded in the signer's audit log:
1. every allowance the old address ever granted is found from its Approval logs
   (eth_getLogs, owner topic) and, where it is still above zero, revoked with exactly
   `approve(spender, 0)`; revocations are built here, never taken from a caller;
2. every allowlisted token the old address holds is moved to the new address with
   `transfer(new, balance)`, each judged first by the guard's own rules (target
   allowlisted, code still pinned, function in scope, recipient is the new address);
   value caps do not apply, the operator is moving the whole account;
3. the ETH left is swept to the new address with a legacy transaction whose fee is exact,
   so nothing stays behind;
4. with a Safe, its guard's agent key is swapped to the new address (a Safe transaction
   signed by the threshold of owners, defiagent.safe.admin.swap_agent, paid by the old key);
5. the old key is retired: recorded in the signer's state dir (the signer refuses to start
   with it) and, for KMS, disabled in KMS itself.
The signer process must be stopped while this runs (its nonces are used here).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eth_abi import encode
from eth_utils import keccak, to_checksum_address
from pydantic import BaseModel

from defiagent.allowlist.models import (
    ActiveAllowlist,
    AllowedFunction,
    ArgConstraint,
    ConstraintKind,
    Role,
)
from defiagent.chain.rpc import RpcError
from defiagent.errors import InfraError, Refused
from defiagent.monitoring.interfaces import AuditSink

RETIRED_FILE = "retired-keys.json"
APPROVAL_TOPIC = "0x" + keccak(text="Approval(address,address,uint256)").hex()
TRANSFER = "transfer(address to,uint256 amount)"
_APPROVE_SELECTOR = "0x095ea7b3"
_TRANSFER_SELECTOR = "0xa9059cbb"
_ALLOWANCE_SELECTOR = "0xdd62ed3e"
_BALANCE_OF_SELECTOR = "0x70a08231"
LOG_CHUNK = 50_000  # blocks per eth_getLogs request
ROTATION_RULES = (
    "kill-switch-off",  # judged against _Off below: the guard's floor, never the signer's switch
    "chain-matches",
    "target-allowlisted",
    "codehash-pinned",
    "function-in-scope",
    "recipient-is-self",
)


# --- retired keys -------------------------------------------------------------------------


def retired_keys(state_dir: Path) -> dict[str, str]:
    """Lower-case address -> when and for what it was retired. A damaged file retires all."""
    path = Path(state_dir) / RETIRED_FILE
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError("not an object")
        return {str(k).lower(): str(v) for k, v in data.items()}
    except (OSError, ValueError) as exc:
        raise Refused(
            f"the retired-keys file {path} cannot be read ({exc}); fix it before signing"
        ) from None


def retire_key(state_dir: Path, old: str, new: str) -> None:
    keys = retired_keys(state_dir)
    keys[old.lower()] = (
        f"retired {datetime.now(UTC).isoformat(timespec='seconds')}, replaced by {new}"
    )
    fd, tmp = tempfile.mkstemp(prefix=".retired-", dir=state_dir)
    with os.fdopen(fd, "w") as fh:
        json.dump(keys, fh, indent=2, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, Path(state_dir) / RETIRED_FILE)


# --- reading the chain -----------------------------------------------------------------------


def _word(address: str) -> str:
    return "0x" + "0" * 24 + address.lower().removeprefix("0x")


def granted_allowances(rpc: Any, owner: str, to_block: int) -> list[tuple[str, str]]:
    """(token, spender) of every Approval event `owner` ever emitted, first seen first."""
    seen: dict[tuple[str, str], None] = {}
    start = 0
    while start <= to_block:
        end = min(to_block, start + LOG_CHUNK - 1)
        try:
            logs = rpc.call(
                "eth_getLogs",
                {
                    "fromBlock": hex(start),
                    "toBlock": hex(end),
                    "topics": [APPROVAL_TOPIC, _word(owner)],
                },
            )
        except RpcError as exc:
            raise InfraError(f"reading the old address's Approval logs failed: {exc}") from exc
        for log in logs or []:
            topics = log.get("topics") or []
            if len(topics) >= 3:
                token = to_checksum_address(log["address"])
                spender = to_checksum_address("0x" + topics[2][-40:])
                seen[(token, spender)] = None
        start = end + 1
    return list(seen)


def _uint_call(rpc: Any, to: str, data: str) -> int:
    try:
        answer = rpc.call("eth_call", {"to": to, "data": data}, "latest")
    except RpcError:
        return 0  # a token that cannot answer holds nothing we can move
    return int(answer, 16) if answer and answer != "0x" else 0


def allowance(rpc: Any, token: str, owner: str, spender: str) -> int:
    return _uint_call(rpc, token, _ALLOWANCE_SELECTOR + _word(owner)[2:] + _word(spender)[2:])


def balance_of(rpc: Any, token: str, owner: str) -> int:
    return _uint_call(rpc, token, _BALANCE_OF_SELECTOR + _word(owner)[2:])


# --- the rotation ------------------------------------------------------------------------------


class RotationStep(BaseModel):
    kind: str  # revoke, transfer, sweep-eth, skip, retire
    target: str | None = None
    detail: str
    tx_hash: str | None = None


class RotationReport(BaseModel):
    old: str
    new: str
    steps: list[RotationStep]
    safe: str = "no Safe configured"


def _rotation_allowlist(allowlist: ActiveAllowlist) -> ActiveAllowlist:
    """The signer's allowlist, with `transfer(to, amount)` in scope on its tokens, `to` bound
    to the recipient: the only call rotation adds to what the guard allows."""
    from defiagent.guard.conventions import conventional_roles

    transfer = AllowedFunction(
        selector=_TRANSFER_SELECTOR,
        signature=TRANSFER,
        constraints=[ArgConstraint(arg="to", kind=ConstraintKind.EQUALS_SELF)],
        roles=conventional_roles(TRANSFER),
    )
    entries = {
        a: e.model_copy(update={"functions": [*e.functions, transfer]})
        if e.role in (Role.TOKEN, Role.WRAPPED_NATIVE)
        else e
        for a, e in allowlist.entries.items()
    }
    return ActiveAllowlist(chain_id=allowlist.chain_id, entries=entries)


class Rotation:
    """One rotation from `old` to `new` (both Signer objects), over `rpc` (a BatchRpcClient)."""

    def __init__(
        self,
        *,
        old: Any,
        new: Any,
        rpc: Any,
        allowlist: ActiveAllowlist,
        chain_id: int,
        audit: AuditSink,
        state_dir: Path,
        receipt_timeout: float = 60.0,
        safe_swap: Callable[[Any, str], str] | None = None,
    ) -> None:
        """`safe_swap(payer, new_address) -> tx hash` swaps a Safe guard's agent key."""
        self.safe_swap = safe_swap
        self.old, self.new, self.rpc = old, new, rpc
        self.allowlist, self.chain_id, self.audit = allowlist, chain_id, audit
        self.state_dir, self.receipt_timeout = state_dir, receipt_timeout
        self.old_address, self.new_address = old.address, new.address
        if self.old_address.lower() == self.new_address.lower():
            raise Refused("the new key has the same address as the old one; nothing to rotate")
        retired = retired_keys(state_dir)
        for address in (self.old_address, self.new_address):
            if address.lower() in retired:
                raise Refused(f"the key {address} is already retired ({retired[address.lower()]})")
        self.steps: list[RotationStep] = []
        self._nonce = int(self.rpc.call("eth_getTransactionCount", self.old_address, "pending"), 16)

    def _step(self, step: RotationStep) -> None:
        self.steps.append(step)
        self.audit.record(
            "signer-rotate-" + step.kind,
            step.model_dump() | {"old": self.old_address, "new": self.new_address},
        )

    def _fees(self) -> tuple[int, int]:
        block = self.rpc.call("eth_getBlockByNumber", "latest", False)
        base = int(block["baseFeePerGas"], 16) if block.get("baseFeePerGas") else 0
        tip = 10**9
        return 2 * base + tip, tip

    def _send(self, tx: dict[str, Any]) -> str:
        signed = self.old.sign_transaction(tx)  # verified by the backend
        try:
            tx_hash = self.rpc.call("eth_sendRawTransaction", signed.raw)
        except RpcError as exc:
            raise InfraError(f"sending the rotation transaction failed: {exc}") from exc
        deadline = time.monotonic() + self.receipt_timeout
        while time.monotonic() < deadline:
            receipt = self.rpc.call("eth_getTransactionReceipt", tx_hash)
            if receipt:
                if int(receipt["status"], 16) != 1:
                    raise Refused(f"the rotation transaction {tx_hash} reverted")
                self._nonce += 1
                return str(tx_hash)
            time.sleep(0.05)
        raise InfraError(
            f"the rotation transaction {tx_hash} was not mined in {self.receipt_timeout:.0f}s"
        )

    def _call_tx(self, to: str, data: str) -> dict[str, Any]:
        try:
            gas = int(
                self.rpc.call(
                    "eth_estimateGas", {"from": self.old_address, "to": to, "data": data}
                ),
                16,
            )
        except RpcError as exc:
            raise Refused(f"the call to {to} would fail: {exc}") from exc
        max_fee, tip = self._fees()
        return {
            "type": 2,
            "chainId": self.chain_id,
            "nonce": self._nonce,
            "to": to,
            "value": 0,
            "data": data,
            "gas": gas * 12 // 10 + 10_000,
            "maxFeePerGas": max_fee,
            "maxPriorityFeePerGas": tip,
            "accessList": [],
        }

    def revoke_allowances(self) -> None:
        head = int(self.rpc.call("eth_blockNumber"), 16)
        for token, spender in granted_allowances(self.rpc, self.old_address, head):
            left = allowance(self.rpc, token, self.old_address, spender)
            if left == 0:
                self._step(
                    RotationStep(
                        kind="skip", target=token, detail=f"allowance to {spender} is already 0"
                    )
                )
                continue
            data = _APPROVE_SELECTOR + encode(["address", "uint256"], [spender, 0]).hex()
            tx_hash = self._send(self._call_tx(token, data))
            if allowance(self.rpc, token, self.old_address, spender) != 0:
                raise Refused(
                    f"the allowance of {spender} on {token} is still not 0 after revoking it"
                )
            self._step(
                RotationStep(
                    kind="revoke",
                    target=token,
                    detail=f"allowance {left} to {spender} set to 0",
                    tx_hash=tx_hash,
                )
            )

    def move_tokens(self) -> None:
        from defiagent.guard.registry import build_rules
        from defiagent.signing.remote.policy import NonceSpendLedger, SignerPolicy
        from defiagent.signing.remote.protocol import UnsignedTx

        rules = [r for r in build_rules() if r.id in ROTATION_RULES]
        ledger_dir = Path(tempfile.mkdtemp(prefix="defiagent-rotation-"))
        policy = SignerPolicy(
            allowlist=_rotation_allowlist(self.allowlist),
            account=self.new_address,  # recipient-is-self: only the new address
            rules=rules,
            assets=[],
            kill_switch=_Off(),
            ledger=NonceSpendLedger(ledger_dir / "unused.jsonl", 1),
            rpc=self.rpc,
        )
        for address, entry in sorted(self.allowlist.entries.items()):
            if entry.role not in (Role.TOKEN, Role.WRAPPED_NATIVE):
                continue
            amount = balance_of(self.rpc, address, self.old_address)
            if amount == 0:
                continue
            data = (
                _TRANSFER_SELECTOR
                + encode(["address", "uint256"], [self.new_address, amount]).hex()
            )
            tx = self._call_tx(address, data)
            judgement = policy.judge(UnsignedTx.model_validate(tx, strict=False))
            if not judgement.decision.allowed:
                raise Refused(
                    f"the guard refused moving {entry.name}: {judgement.decision.reason()}"
                )
            tx_hash = self._send(tx)
            self._step(
                RotationStep(
                    kind="transfer",
                    target=address,
                    detail=f"{amount} {entry.name} to {self.new_address}",
                    tx_hash=tx_hash,
                )
            )

    def sweep_eth(self) -> None:
        balance = int(self.rpc.call("eth_getBalance", self.old_address, "latest"), 16)
        max_fee, _tip = self._fees()
        fee = 21_000 * max_fee
        if balance <= fee:
            self._step(
                RotationStep(
                    kind="skip", detail=f"{balance} wei left: not enough to pay for moving it"
                )
            )
            return
        # Legacy: the fee charged is exactly gasPrice * gas, so the old address ends at 0.
        tx = {
            "chainId": self.chain_id,
            "nonce": self._nonce,
            "to": self.new_address,
            "value": balance - fee,
            "data": "0x",
            "gas": 21_000,
            "gasPrice": max_fee,
        }
        tx_hash = self._send(tx)
        self._step(
            RotationStep(
                kind="sweep-eth",
                target=self.new_address,
                detail=f"{balance - fee} wei",
                tx_hash=tx_hash,
            )
        )

    def swap_safe_agent(self) -> str:
        if self.safe_swap is None:
            return "no Safe configured"
        tx_hash = self.safe_swap(self.old, self.new_address)
        self._nonce = int(self.rpc.call("eth_getTransactionCount", self.old_address, "pending"), 16)
        self._step(
            RotationStep(
                kind="safe-agent",
                detail=f"the Safe guard's agent is now {self.new_address}",
                tx_hash=tx_hash,
            )
        )
        return f"the guard's agent swapped to {self.new_address} ({tx_hash})"

    def retire(self) -> None:
        retire_key(self.state_dir, self.old_address, self.new_address)
        disable = getattr(self.old, "disable", None)
        extra = ""
        if self.old.__class__.__name__ == "KmsSigner":
            self.old._kms().disable_key(KeyId=self.old.key_id)
            extra = f"; KMS key {self.old.key_id} disabled"
        elif callable(disable):
            disable()
        self._step(
            RotationStep(
                kind="retire", target=self.old_address, detail="the old key is retired" + extra
            )
        )

    def run(self) -> RotationReport:
        self.audit.record("signer-rotate-start", {"old": self.old_address, "new": self.new_address})
        self.revoke_allowances()
        self.move_tokens()
        safe = self.swap_safe_agent()  # paid by the old key: before its ETH leaves
        self.sweep_eth()
        self.retire()
        report = RotationReport(
            old=self.old_address, new=self.new_address, steps=self.steps, safe=safe
        )
        self.audit.record(
            "signer-rotate-done",
            {"old": self.old_address, "new": self.new_address, "safe": report.safe},
        )
        return report


class _Off:
    """Rotation runs whatever the signer's kill switch says: it is how an incident ends."""

    def is_on(self) -> bool:
        return False
