"""Sign and send a planned call that passed the guard, the simulation and the outcome checks.

Order of steps, each made durable in the journal before the next one starts:

    kill switch? -> journal planned -> fees within caps, nonce -> kill switch? -> sign ->
    verify the signature byte for byte -> journal signed (raw bytes) -> kill switch? ->
    broadcast -> journal sent -> receipt with confirmations -> journal confirmed/failed

Broadcasting goes through a Submitter (defiagent/broadcast): the public mempool by default,
or a private relay (`[broadcast] mode = "private"`), whose transactions expire after their
window: an expired entry ends `expired` (its nonce free for the next transaction) unless the
configured fallback sends the same bytes publicly, once.

A crash anywhere leaves the journal saying what may have reached the network: `reconcile()`
re-broadcasts signed raw bytes (same hash, so never a second transaction), collects receipts,
and marks an entry dropped when its nonce went to something else. A planned entry that was
never signed can be executed again (nothing of it can exist on chain); any other journaled
call is refused, so an intent never runs twice.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict

from defiagent.broadcast.base import Expiry, Submitter
from defiagent.broadcast.public import PublicSubmitter
from defiagent.chain.rpc import JsonRpcClient, RpcError
from defiagent.errors import DefiagentError, InfraError, Refused
from defiagent.execution.fees import FeePolicy, Fees, bump, gwei, quote
from defiagent.execution.journal import IN_FLIGHT, Attempt, AttemptKind, Entry, Journal, State
from defiagent.execution.models import PlannedCall
from defiagent.execution.nonces import NonceManager
from defiagent.execution.receipts import Mined, find_mined
from defiagent.monitoring.interfaces import AuditSink, KillSwitchState, NullAuditSink
from defiagent.signing.base import SignedTransaction, Signer, verify_signed_transaction
from defiagent.simulation.models import SimulationOutcome

log = logging.getLogger("defiagent.execution")

# Crash-test hook points, in order. `on_step(step, key)` is called right after each.
STEPS = ("after-plan", "after-sign", "after-send", "before-receipt")
_ALREADY_KNOWN = ("already known", "known transaction", "already imported", "alreadyknown")
_NONCE_USED = ("nonce too low", "nonce is too low", "oldnonce")


class ExecutionResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: str
    intent_id: str
    state: State
    tx_hash: str | None = None
    nonce: int | None = None
    block_number: int | None = None
    gas_used: int | None = None
    reason: str = ""

    @classmethod
    def of(cls, entry: Entry) -> ExecutionResult:
        return cls(
            key=entry.key,
            intent_id=entry.intent_id,
            state=entry.state,
            tx_hash=entry.tx_hash,
            nonce=entry.nonce,
            block_number=entry.block_number,
            gas_used=entry.gas_used,
            reason=entry.reason,
        )


class Executor:
    """One signer, one chain, one journal. Not thread-safe beyond the nonce lock."""

    def __init__(
        self,
        rpc_url: str,
        signer: Signer,
        journal: Journal,
        fees: FeePolicy,
        *,
        kill_switch: KillSwitchState,
        audit: AuditSink | None = None,
        chain_id: int | None = None,
        confirmations: int = 1,
        receipt_timeout: float = 60.0,
        poll_interval: float = 0.05,
        drop_grace_seconds: float = 2.0,
        rpc_timeout: float = 10.0,
        on_step: Callable[[str, str], None] | None = None,
        submitter: Submitter | None = None,
    ) -> None:
        if confirmations < 1:
            raise ValueError("confirmations must be at least 1")
        self.rpc = JsonRpcClient(rpc_url, timeout=rpc_timeout)
        self.signer = signer
        self.journal = journal
        self.fees = fees
        self.kill_switch = kill_switch
        self.audit = audit or NullAuditSink()
        self.confirmations = confirmations
        self.receipt_timeout = receipt_timeout
        self.poll_interval = poll_interval
        # How long a used nonce with none of our receipts must last before the entry is
        # called dropped: behind one URL, a node may count a block whose receipts another
        # node does not serve yet, and a trade wrongly called dropped could be made twice.
        self.drop_grace_seconds = drop_grace_seconds
        self._nonce_taken_since: dict[str, float] = {}
        self.on_step = on_step
        self.nonces = NonceManager(self.rpc, journal)
        self.submitter: Submitter = (
            submitter if submitter is not None else PublicSubmitter(self.rpc)
        )
        try:
            actual = int(self.rpc.call("eth_chainId"), 16)
        except RpcError as exc:
            raise InfraError(
                f"the chain RPC did not answer, so nothing can be sent: {exc}"
            ) from exc
        if chain_id is not None and actual != chain_id:
            raise InfraError(f"the RPC serves chain {actual}, not the configured chain {chain_id}")
        self.chain_id = actual
        # Entries in flight from an earlier run hold nonces and may be in a mempool: they
        # must be reconciled before anything new is signed.
        self._unreconciled = bool(journal.entries(IN_FLIGHT))

    # -- the main path -------------------------------------------------------------------
    def execute(self, call: PlannedCall, outcome: SimulationOutcome) -> ExecutionResult:
        """Sign, send and wait for the receipt. Refused/InfraError on any failure before send."""
        self.sign(call, outcome)
        return self.send(call.journal_key)

    def sign(self, call: PlannedCall, outcome: SimulationOutcome) -> SignedTransaction:
        """Journal, build within the fee caps, sign and verify; nothing is broadcast."""
        if self._unreconciled:
            raise Refused(
                "the journal has transactions in flight from an earlier run; "
                "call reconcile() before executing anything new"
            )
        if call.sender.lower() != self.signer.address.lower():
            raise Refused(
                f"the call is from {call.sender}, but the signer is {self.signer.address}"
            )
        if not outcome.success:
            raise Refused("the simulation of this call did not succeed; it is not signed")
        self._require_kill_switch_off("before planning")
        entry, created = self.journal.plan(call, self.chain_id)
        if not created and entry.state != State.PLANNED:
            raise Refused(
                f"intent {call.intent_id} ({call.description or call.intent_kind}) is already "
                f"in the journal as {entry.state}; a journaled call is never executed again"
            )
        key = call.journal_key
        self._record("execution.planned", self._call_payload(call), critical=True)
        self._step("after-plan", key)
        try:
            with self.nonces.lock:
                tx = self._build(call, outcome)
                self._require_kill_switch_off("before signing")
                signed = self._sign_and_verify(tx, call.sender)
                self.journal.add_attempt(
                    Attempt(
                        key=key,
                        seq=0,
                        kind=AttemptKind.ORIGINAL,
                        tx_hash=signed.hash,
                        raw=signed.raw,
                        nonce=signed.nonce,
                        gas=tx["gas"],
                        max_fee_per_gas=tx["maxFeePerGas"],
                        max_priority_fee_per_gas=tx["maxPriorityFeePerGas"],
                        created_at=time.time(),
                    )
                )
        except DefiagentError as exc:
            self._abort(key, str(exc))
            raise
        except Exception as exc:  # a signer backend blowing up is infrastructure, fail closed
            self._abort(key, f"signing failed: {exc}")
            raise InfraError(f"the signer failed, nothing was signed: {exc}") from exc
        try:
            self._record_signed(key, call, tx, signed)
        except InfraError as exc:
            self._abort(key, f"{exc}; the signed transaction was discarded unsent")
            raise
        self._step("after-sign", key)
        return signed

    def _record_signed(
        self, key: str, call: PlannedCall, tx: dict[str, Any], signed: SignedTransaction
    ) -> None:
        self._record(
            "execution.signed",
            {
                "key": key,
                "intent_id": call.intent_id,
                "tx_hash": signed.hash,
                "nonce": signed.nonce,
                "raw": signed.raw,
                "gas": tx["gas"],
                "max_fee_per_gas": tx["maxFeePerGas"],
                "max_priority_fee_per_gas": tx["maxPriorityFeePerGas"],
            },
            critical=True,
        )

    def send(self, key: str) -> ExecutionResult:
        """Broadcast a signed entry's raw bytes and wait for its receipt."""
        entry = self._entry(key)
        if entry.state != State.SIGNED:
            raise Refused(f"{key} is {entry.state}, not signed; it is not sent")
        try:
            self._require_kill_switch_off("before sending")
        except Refused as exc:
            self._abort(key, str(exc) + "; the signed transaction was discarded unsent")
            raise
        attempt = self.journal.attempts(key)[-1]
        try:
            self._broadcast(entry, attempt)
        except Refused as exc:
            if self._entry(key).state == State.SIGNED:  # the node refused it: nothing is out
                self._abort(key, str(exc))
            raise
        except InfraError:
            self._unreconciled = True  # it may be out: re-send the same bytes before anything new
            raise
        self._step("after-send", key)
        self.journal.set_state(key, State.SENT)
        self._record(
            "execution.sent",
            {
                "key": key,
                "tx_hash": attempt.tx_hash,
                "nonce": attempt.nonce,
                "via": self.submitter.mode,
            },
        )
        self._step("before-receipt", key)
        return self.wait(key)

    def execute_bundle(
        self, items: list[tuple[PlannedCall, SimulationOutcome]]
    ) -> list[ExecutionResult]:
        """Sign each call (consecutive nonces) and send them as one bundle: all included in
        one block in this order, or none (needs `[broadcast] mode = "private"`)."""
        keys: list[str] = []
        try:
            for call, outcome in items:
                self.sign(call, outcome)
                keys.append(call.journal_key)
        except DefiagentError:
            for key in keys:  # a bundle goes whole or not at all
                self._abort(key, "another transaction of its bundle could not be signed")
            raise
        return self.send_bundle(keys)

    def send_bundle(self, keys: list[str]) -> list[ExecutionResult]:
        """Broadcast signed entries as one bundle and wait for each receipt."""
        entries = [self._entry(key) for key in keys]
        for entry in entries:
            if entry.state != State.SIGNED:
                raise Refused(f"{entry.key} is {entry.state}, not signed; the bundle is not sent")
        attempts = [self.journal.attempts(key)[-1] for key in keys]
        try:
            self._require_kill_switch_off("before sending")
            self.submitter.submit_bundle([a.raw for a in attempts], [a.tx_hash for a in attempts])
        except Refused as exc:
            for key in keys:
                self._abort(key, str(exc) + "; the bundle was discarded unsent")
            raise
        except RpcError as exc:
            if exc.code is not None:  # the relay looked at it and refused: nothing is out
                for key in keys:
                    self._abort(key, f"the relay refused the bundle: {exc}")
                raise Refused(f"the relay refused the bundle: {exc}") from exc
            self._unreconciled = True  # it may be out: settle before anything new
            raise InfraError(
                f"the bundle may not have been sent ({exc}); reconcile() settles its entries"
            ) from exc
        for attempt in attempts:
            self.journal.set_state(attempt.key, State.SENT)
            self._record(
                "execution.sent",
                {
                    "key": attempt.key,
                    "tx_hash": attempt.tx_hash,
                    "nonce": attempt.nonce,
                    "via": f"{self.submitter.mode} bundle",
                },
            )
        return [self.wait(key) for key in keys]

    def wait(self, key: str, timeout: float | None = None) -> ExecutionResult:
        """Poll until one of the entry's attempts is mined and confirmed, or the timeout."""
        deadline = time.monotonic() + (self.receipt_timeout if timeout is None else timeout)
        while True:
            entry = self._entry(key)
            if entry.state in (
                State.CONFIRMED,
                State.FAILED,
                State.CANCELLED,
                State.DROPPED,
                State.ABORTED,
                State.EXPIRED,
            ):
                return ExecutionResult.of(entry)
            result = self._resolve(entry, rebroadcast=False)
            if result is not None:
                return result
            if time.monotonic() >= deadline:
                return ExecutionResult.of(entry).model_copy(
                    update={"reason": "no confirmed receipt yet; replace_stuck() can bump its fees"}
                )
            time.sleep(self.poll_interval)

    # -- recovery ------------------------------------------------------------------------
    def reconcile(self, *, timeout: float | None = None) -> list[ExecutionResult]:
        """After a restart: settle every entry the journal left in flight."""
        results = []
        unsettled = 0
        for entry in self.journal.entries((State.PLANNED, *IN_FLIGHT)):
            if entry.state == State.PLANNED:
                results.append(
                    ExecutionResult.of(entry).model_copy(
                        update={"reason": "interrupted before signing; nothing was sent"}
                    )
                )
                continue
            try:
                resolved = self._resolve(entry, rebroadcast=True)
            except DefiagentError as exc:
                # Left in flight: it may still be in some mempool. New work stays refused
                # until an operator (or a later reconcile) settles it.
                unsettled += 1
                results.append(
                    ExecutionResult.of(entry).model_copy(update={"reason": f"not settled: {exc}"})
                )
                continue
            results.append(resolved if resolved is not None else self.wait(entry.key, timeout))
        self._unreconciled = unsettled > 0
        self._record("execution.reconciled", {"entries": [r.model_dump() for r in results]})
        return results

    def replace_stuck(self, *, older_than: float, cancel: bool = False) -> list[ExecutionResult]:
        """Bump (or cancel) every sent entry whose latest attempt is older than `older_than` s."""
        results = []
        now = time.time()
        for entry in self.journal.entries((State.SENT,)):
            if now - self.journal.attempts(entry.key)[-1].created_at >= older_than:
                results.append(self.bump(entry.key, cancel=cancel))
        return results

    def bump(self, key: str, *, cancel: bool = False) -> ExecutionResult:
        """Replace a sent tx at the same nonce with fees +bump% (within the caps), or cancel it
        with a 0-value transfer to self. A cancel is allowed while the kill switch is on."""
        entry = self._entry(key)
        if entry.state != State.SENT:
            raise Refused(f"{key} is {entry.state}; only a sent transaction can be replaced")
        resolved = self._resolve(entry, rebroadcast=False)
        if resolved is not None:
            return resolved
        previous = self.journal.attempts(key)[-1]
        fees = bump(
            self.fees,
            Fees(
                max_fee_per_gas=previous.max_fee_per_gas,
                max_priority_fee_per_gas=previous.max_priority_fee_per_gas,
            ),
            self._base_fee(),
        )
        call = entry.call
        if cancel:
            to, value, data, gas = call.sender, 0, "0x", 21_000
        else:
            self._require_kill_switch_off("before signing a replacement")
            to, value, data, gas = call.target, call.value, call.data, previous.gas
        tx = self._tx(to, value, data, gas, previous.nonce, fees)
        with self.nonces.lock:
            signed = self._sign_and_verify(tx, call.sender)
            attempt = Attempt(
                key=key,
                seq=previous.seq + 1,
                kind=AttemptKind.CANCEL if cancel else AttemptKind.REPLACEMENT,
                tx_hash=signed.hash,
                raw=signed.raw,
                nonce=signed.nonce,
                gas=gas,
                max_fee_per_gas=fees.max_fee_per_gas,
                max_priority_fee_per_gas=fees.max_priority_fee_per_gas,
                created_at=time.time(),
            )
            self.journal.add_attempt(attempt)
        self._record(
            "execution.cancel-signed" if cancel else "execution.replacement-signed",
            {
                "key": key,
                "replaces": previous.tx_hash,
                "tx_hash": signed.hash,
                "nonce": signed.nonce,
                "raw": signed.raw,
                "max_fee_per_gas": fees.max_fee_per_gas,
                "max_priority_fee_per_gas": fees.max_priority_fee_per_gas,
            },
        )
        if not cancel:
            self._require_kill_switch_off("before sending a replacement")
        self._broadcast(self._entry(key), attempt)
        return self.wait(key, timeout=self.receipt_timeout)

    # -- internals -------------------------------------------------------------------------
    def _entry(self, key: str) -> Entry:
        entry = self.journal.get(key)
        if entry is None:
            raise Refused(f"{key} is not in the journal")
        return entry

    def _base_fee(self) -> int:
        block = self.rpc.call("eth_getBlockByNumber", "latest", False)
        if not block or block.get("baseFeePerGas") is None:
            raise InfraError("the chain reports no base fee; EIP-1559 fees cannot be set")
        return int(block["baseFeePerGas"], 16)

    def _tx(
        self, to: str, value: int, data: str, gas: int, nonce: int, fees: Fees
    ) -> dict[str, Any]:
        return {
            "type": 2,
            "chainId": self.chain_id,
            "nonce": nonce,
            "to": to,
            "value": value,
            "data": data,
            "gas": gas,
            "maxFeePerGas": fees.max_fee_per_gas,
            "maxPriorityFeePerGas": fees.max_priority_fee_per_gas,
            "accessList": [],
        }

    def _build(self, call: PlannedCall, outcome: SimulationOutcome) -> dict[str, Any]:
        gas = math.ceil(outcome.gas_used * self.fees.gas_limit_multiplier)
        gas += self.fees.gas_limit_headroom
        if gas > self.fees.max_gas_limit:
            raise Refused(
                f"the call needs a gas limit of {gas:,}, above the cap of {self.fees.max_gas_limit:,}"
            )
        fees = quote(self.fees, self._base_fee())
        nonce = self.nonces.next_nonce(call.sender)
        return self._tx(call.target, call.value, call.data, gas, nonce, fees)

    def _sign_and_verify(self, tx: dict[str, Any], sender: str) -> SignedTransaction:
        signed = self.signer.sign_transaction(dict(tx))
        # Never trust the backend's own check: recover and compare byte for byte here too.
        verified = verify_signed_transaction(signed.raw, sender, tx)
        if verified.hash.lower() != signed.hash.lower():
            raise Refused("the signer reported another hash than the transaction it returned")
        if verified.nonce != tx["nonce"]:
            raise Refused(f"the signed nonce {verified.nonce} is not the requested {tx['nonce']}")
        return verified

    def _broadcast(self, entry: Entry, attempt: Attempt) -> None:
        try:
            self.submitter.submit(attempt.raw, attempt.tx_hash)
        except RpcError as exc:
            message = str(exc).lower()
            if any(s in message for s in _ALREADY_KNOWN):
                return  # the same bytes are already there: that is the goal
            if any(s in message for s in _NONCE_USED) and exc.code is not None:
                # Ours (an earlier attempt) may have been mined; _resolve decides.
                if self._resolve(entry, rebroadcast=False) is None:
                    raise Refused(f"the nonce {attempt.nonce} is already used: {exc}") from exc
                return
            if exc.code is not None:
                # The node looked at the tx and refused it: it will not be mined as is.
                self._record("execution.broadcast-refused", {"key": entry.key, "error": str(exc)})
                raise Refused(f"the node refused the transaction {attempt.tx_hash}: {exc}") from exc
            # No answer: it may or may not have gone out. The journal keeps it signed, and
            # reconcile() re-broadcasts the same bytes.
            raise InfraError(
                f"the transaction {attempt.tx_hash} may not have been broadcast ({exc}); "
                "reconcile() will re-send the same signed bytes"
            ) from exc

    def _resolve(self, entry: Entry, *, rebroadcast: bool) -> ExecutionResult | None:
        """Settle an in-flight entry from the chain if possible; None while it is pending."""
        attempts = self.journal.attempts(entry.key)
        if not attempts:
            self._abort(entry.key, "no signed transaction was recorded; nothing was sent")
            return ExecutionResult.of(self._entry(entry.key))
        mined = find_mined(self.rpc, [a.tx_hash for a in attempts], self.confirmations)
        if mined is not None:
            return self._finish_mined(entry, attempts, mined)
        nonce = attempts[-1].nonce
        if self.nonces.mined_count(entry.sender) > nonce:
            # Our nonce is used. Look once more (a receipt may lag the count), then it is
            # someone else's transaction: ours can never be mined.
            mined = find_mined(self.rpc, [a.tx_hash for a in attempts], 1)
            if mined is not None:
                if self.confirmations > 1:
                    return None  # ours, not deep enough yet
                return self._finish_mined(entry, attempts, mined)
            since = self._nonce_taken_since.setdefault(entry.key, time.monotonic())
            if time.monotonic() - since < self.drop_grace_seconds:
                return None  # our receipt may still show up: ask again
            self._nonce_taken_since.pop(entry.key, None)
            reason = f"nonce {nonce} was used by a transaction this journal did not send"
            self.journal.finish(entry.key, State.DROPPED, reason=reason)
            self._record("execution.dropped", {"key": entry.key, "nonce": nonce, "reason": reason})
            return ExecutionResult.of(self._entry(entry.key))
        expiry = self.submitter.expired(attempts[-1].tx_hash)
        if expiry is not None:
            return self._expired(entry, attempts, expiry)
        if rebroadcast:
            latest = attempts[-1]
            self._broadcast(entry, latest)
            if entry.state == State.SIGNED:
                self.journal.set_state(entry.key, State.SENT)
            self._record("execution.rebroadcast", {"key": entry.key, "tx_hash": latest.tx_hash})
        return None

    def _expired(
        self, entry: Entry, attempts: list[Attempt], expiry: Expiry
    ) -> ExecutionResult | None:
        """A private submission's window is over without a receipt: ask the relay to drop it,
        then send the same bytes publicly once if `[broadcast] fallback = "public"`, else end
        the entry `expired` (never re-sent publicly; its nonce is free for the next one)."""
        if find_mined(self.rpc, [a.tx_hash for a in attempts], 1) is not None:
            return None  # it landed after all (the receipt lagged the head): the next poll settles
        latest = attempts[-1]
        self.submitter.cancel(expiry.tx_hash)  # a relay must drop it after its window anyway
        payload = {
            "key": entry.key,
            "intent_id": entry.intent_id,
            "tx_hash": expiry.tx_hash,
            "nonce": latest.nonce,
            "max_block_number": expiry.max_block,
            "head": expiry.head,
            "relay": expiry.relay,
        }
        if self.submitter.fall_back(expiry.tx_hash):
            try:
                self._broadcast(entry, latest)
            except Refused as exc:  # the node will not take it: it is nowhere now
                reason = f"expired at the relay and the public fallback was refused: {exc}"
            except InfraError:
                self._unreconciled = True  # it may be out publicly: keep tracking it
                return None
            else:
                self._record("execution.sent-public-after-expiry", payload)
                return None
        else:
            reason = (
                f"the private transaction {expiry.tx_hash} was not included by block "
                f"{expiry.max_block} (maxBlockNumber) and has expired; it was not sent "
                f'publicly ([broadcast] fallback = "none"), and its nonce {latest.nonce} '
                "is free for the next transaction"
            )
        self.journal.finish(entry.key, State.EXPIRED, reason=reason)
        self._record("execution.expired", {**payload, "reason": reason})
        return ExecutionResult.of(self._entry(entry.key))

    def _finish_mined(self, entry: Entry, attempts: list[Attempt], mined: Mined) -> ExecutionResult:
        self._nonce_taken_since.pop(entry.key, None)  # its receipt came in the grace period
        kind = next(a.kind for a in attempts if a.tx_hash == mined.tx_hash)
        if kind == AttemptKind.CANCEL:
            state, reason = State.CANCELLED, "cancelled by a 0-value transfer at the same nonce"
        elif mined.status == 1:
            state, reason = State.CONFIRMED, ""
        else:
            state, reason = State.FAILED, "the transaction was mined but reverted"
        self.journal.finish(
            entry.key,
            state,
            tx_hash=mined.tx_hash,
            block_number=mined.block_number,
            gas_used=mined.gas_used,
            reason=reason,
        )
        self._record(
            f"execution.{state}",
            {
                "key": entry.key,
                "intent_id": entry.intent_id,
                "tx_hash": mined.tx_hash,
                "block_number": mined.block_number,
                "block_hash": mined.block_hash,
                "gas_used": mined.gas_used,
                "replaced": [a.tx_hash for a in attempts if a.tx_hash != mined.tx_hash],
            },
        )
        return ExecutionResult.of(self._entry(entry.key))

    def _abort(self, key: str, reason: str) -> None:
        entry = self.journal.get(key)
        if entry is not None and entry.state in (State.PLANNED, State.SIGNED):
            self.journal.finish(key, State.ABORTED, reason=reason)
        self._record("execution.refused", {"key": key, "reason": reason})

    def _require_kill_switch_off(self, when: str) -> None:
        try:
            on = self.kill_switch.is_on()
        except Exception as exc:  # an unreadable kill switch counts as pulled
            raise Refused(
                f"the kill switch could not be read {when} ({exc}); nothing is sent"
            ) from exc
        if on:
            raise Refused(f"the kill switch is on ({when}); nothing is signed or sent")

    def _record(self, kind: str, payload: dict[str, Any], *, critical: bool = False) -> None:
        try:
            self.audit.record(kind, payload)
        except Exception as exc:
            if critical:  # no trail, no transaction
                raise InfraError(f"the audit log could not record {kind}: {exc}") from exc
            log.error("the audit log could not record %s: %s", kind, exc)

    def _step(self, step: str, key: str) -> None:
        if self.on_step is not None:
            self.on_step(step, key)

    @staticmethod
    def _call_payload(call: PlannedCall) -> dict[str, Any]:
        return {
            "key": call.journal_key,
            "intent_id": call.intent_id,
            "intent_kind": call.intent_kind,
            "target": call.target,
            "value": call.value,
            "data": call.data,
            "sender": call.sender,
            "description": call.description,
        }


__all__ = ["STEPS", "ExecutionResult", "Executor", "FeePolicy", "gwei"]
