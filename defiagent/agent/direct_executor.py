"""A minimal executor: fee caps, nonce from the node, kill switch before sign and send.

Used until (and where) the execution package's journaled executor is not wired: it has no
write-ahead journal, so a crash between send and receipt is only recovered by the nonce.
"""

from __future__ import annotations

from defiagent.agent.ports import ExecutionResult
from defiagent.chain.rpc import JsonRpcClient, RpcError
from defiagent.errors import DefiagentError, Refused
from defiagent.execution.fees import FeePolicy, quote
from defiagent.execution.models import PlannedCall
from defiagent.monitoring.interfaces import AuditSink, KillSwitchState, NullAuditSink
from defiagent.signing.base import Signer
from defiagent.simulation.models import SimulationOutcome


class DirectExecutor:
    def __init__(
        self,
        rpc: JsonRpcClient,
        signer: Signer,
        kill_switch: KillSwitchState,
        *,
        chain_id: int,
        fees: FeePolicy | None = None,
        audit: AuditSink | None = None,
        receipt_timeout: float = 120.0,
        poll_seconds: float = 0.05,
    ) -> None:
        self.rpc = rpc
        self.signer = signer
        self.kill_switch = kill_switch
        self.chain_id = chain_id
        self.fees = fees or FeePolicy()
        self.audit = audit or NullAuditSink()
        self.receipt_timeout = receipt_timeout
        self.poll = poll_seconds

    def _refused(self, call: PlannedCall, reason: str) -> ExecutionResult:
        self.audit.record("execution-refused", {"intent_id": call.intent_id, "reason": reason})
        return ExecutionResult(status="refused", reason=reason)

    def execute(self, call: PlannedCall, outcome: SimulationOutcome) -> ExecutionResult:
        if call.sender.lower() != self.signer.address.lower():
            return self._refused(call, f"the call is from {call.sender}, the signer is another")
        if self.kill_switch.is_on():
            return self._refused(call, "the kill switch is on; nothing was signed")
        try:
            block = self.rpc.call("eth_getBlockByNumber", "latest", False)
            base_fee = int(block.get("baseFeePerGas") or "0x0", 16)
            fees = quote(self.fees, base_fee)
            nonce = int(self.rpc.call("eth_getTransactionCount", call.sender, "pending"), 16)
        except Refused as exc:
            return self._refused(call, exc.message)
        except (RpcError, DefiagentError) as exc:
            return ExecutionResult(status="failed", reason=f"the node could not be read: {exc}")
        gas = min(
            int(outcome.gas_used * self.fees.gas_limit_multiplier) + 10_000, self.fees.max_gas_limit
        )
        tx = {
            "type": 2,
            "chainId": self.chain_id,
            "nonce": nonce,
            "to": call.target,
            "data": call.data,
            "value": call.value,
            "gas": gas,
            "maxFeePerGas": fees.max_fee_per_gas,
            "maxPriorityFeePerGas": fees.max_priority_fee_per_gas,
        }
        try:
            signed = self.signer.sign_transaction(tx)
        except DefiagentError as exc:
            return self._refused(call, f"the signer refused: {exc}")
        self.audit.record(
            "signed",
            {
                "intent_id": call.intent_id,
                "tx_hash": signed.hash,
                "nonce": nonce,
                "gas": gas,
                "max_fee_per_gas": fees.max_fee_per_gas,
                "max_priority_fee_per_gas": fees.max_priority_fee_per_gas,
            },
        )
        if self.kill_switch.is_on():  # switched on while signing: the signature is dropped
            return self._refused(call, "the kill switch went on after signing; nothing was sent")
        try:
            tx_hash = self.rpc.call("eth_sendRawTransaction", signed.raw)
        except RpcError as exc:
            self.audit.record("broadcast-failed", {"intent_id": call.intent_id, "error": str(exc)})
            return ExecutionResult(status="failed", tx_hash=signed.hash, reason=str(exc))
        self.audit.record("broadcast", {"intent_id": call.intent_id, "tx_hash": tx_hash})
        return self._wait(call, tx_hash)

    def _wait(self, call: PlannedCall, tx_hash: str) -> ExecutionResult:
        import time

        deadline = time.monotonic() + self.receipt_timeout
        while time.monotonic() < deadline:
            try:
                receipt = self.rpc.call("eth_getTransactionReceipt", tx_hash)
            except RpcError:
                receipt = None
            if receipt and receipt.get("blockNumber"):
                status = "mined" if int(receipt["status"], 16) == 1 else "reverted"
                result = ExecutionResult(
                    status=status,
                    tx_hash=tx_hash,
                    block_number=int(receipt["blockNumber"], 16),
                    gas_used=int(receipt["gasUsed"], 16),
                    reason="" if status == "mined" else "the transaction reverted on chain",
                )
                self.audit.record("receipt", {"intent_id": call.intent_id, **result.model_dump()})
                return result
            time.sleep(self.poll)
        reason = f"no receipt within {self.receipt_timeout:.0f}s"
        self.audit.record("receipt-timeout", {"intent_id": call.intent_id, "tx_hash": tx_hash})
        return ExecutionResult(status="failed", tx_hash=tx_hash, reason=reason)
