"""The signer's own judgement of one unsigned transaction: the guard's rules, not a copy.

The agent's guard judges a PlannedCall it made from an intent; here the only input is the
raw transaction, from a caller that may be compromised. So the transaction is turned into
the same PlannedCall the guard reads (target, calldata, value, and what it can spend,
derived from its decoded arguments by the roles its allowlist function declares), and a
GuardContext is built from what the signer holds itself: its own verified allowlist, code
hashes read through its own RPC right now, its own kill switch, its own spend ledger and
its own limits and asset prices. Then `Guard.decide` runs the same rule classes the agent
runs (SIGNER_RULES): one implementation.

Rules that need what only the agent has (the intent, the strategy's rate, a market
snapshot for slippage and price sanity) are not run here; docs/custody.md says what that
leaves open.
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from pydantic import BaseModel

from defiagent.agent.observe import codehash, observe_code
from defiagent.allowlist.models import ActiveAllowlist, ArgRole, Role
from defiagent.chain.rpc import RpcError
from defiagent.decisions import Decision, Verdict
from defiagent.errors import InfraError, Refused
from defiagent.execution.models import ExpectedDelta, PlannedCall
from defiagent.guard.base import FeeQuote, GuardContext, GuardRequest, Rule
from defiagent.guard.calldata import CalldataError, checksum, decode_call
from defiagent.guard.conventions import (
    ALL_OR_NOTHING_APPROVALS,
    APPROVAL_FUNCTIONS,
    RoleArgs,
    address_args,
    approval_spender,
)
from defiagent.guard.guard import Guard
from defiagent.guard.registry import build_rules, parse_sections
from defiagent.guard.valuation import outflow_value
from defiagent.monitoring.interfaces import KillSwitchState
from defiagent.signing.remote.protocol import UnsignedTx
from defiagent.signing.remote.settings import AssetPrice
from defiagent.simulation.batch import BatchRpcClient

# The guard rules that judge a transaction on its own, in the guard's order. Left out:
# sender-is-agent (the sender is this key by construction), intent-kind-allowed and
# intent-rate-limit (no intent reaches the signer), price-sane and slippage-bound (they
# need the agent's market snapshot).
SIGNER_RULES = (
    "kill-switch-off",
    "chain-matches",
    "target-allowlisted",
    "codehash-pinned",
    "function-in-scope",
    "recipient-is-self",
    "spender-allowlisted",
    "approval-bounded",
    "tokens-allowlisted",
    "argument-equals",
    "deadline-bounded",
    "value-cap-per-tx",
    "value-cap-per-window",
    "fee-cap",
)
CAP_RULES = ("value-cap-per-tx", "value-cap-per-window")
SAFE_CALL_SHAPE = "safe-call-shape"  # the signer's own check: what the key may ask the guard
SPEND_READABLE = "spend-readable"  # the signer's own check: what the call spends is known
NOT_A_CALL = "contract-call-only"  # the signer's own check: no contract creation, no bare send
_ASSET_ROLES = (Role.TOKEN, Role.WRAPPED_NATIVE)


def signer_rules(limits: dict[str, Any] | None) -> list[Rule[Any]]:
    """The guard's rule objects for SIGNER_RULES, configured from the signer's [limits]
    (the same sections as the agent's [guard]: per_tx_value_cap, window_value_cap,
    approvals, fee_cap, deadline)."""
    guard_section, _ = parse_sections(limits or {}, None)
    by_id = {rule.id: rule for rule in build_rules(guard_section)}
    missing = [rule_id for rule_id in SIGNER_RULES if rule_id not in by_id]
    if missing:
        raise Refused(f"the signer's limits disable {', '.join(missing)}; it cannot run without")
    return [by_id[rule_id] for rule_id in SIGNER_RULES]


def spend_of(req: GuardRequest) -> tuple[list[ExpectedDelta], str | None]:
    """What a call can take out of the account, read from its arguments, or why not.

    Approvals spend nothing themselves (approval-bounded caps them); a call to a token or
    WETH spends its first amount argument of the target token (transfer, withdraw); a trade
    spends its amount-in (or max-in) of the first token of its path, or both desired
    amounts of a liquidity add. ETH sent with the call is counted by the value caps.
    """
    if req.decoded is None or req.function is None or req.entry is None:
        return [], None  # target-allowlisted or function-in-scope refuses it
    name = req.decoded.function.name
    if name in APPROVAL_FUNCTIONS or name in ALL_OR_NOTHING_APPROVALS:
        return [], None
    if req.entry.role in _ASSET_ROLES:
        for type_, arg in zip(req.decoded.function.types, req.decoded.function.names, strict=True):
            if type_.startswith("uint") and "[" not in type_:
                amount = int(req.decoded.args[arg])
                return [ExpectedDelta(token=req.call.target, min_delta=-amount)], None
        return [], None  # deposit(): only the ETH sent, counted by the caps
    a = RoleArgs.of(req)
    if ArgRole.AMOUNT_A_DESIRED in a or ArgRole.AMOUNT_B_DESIRED in a:
        out = []
        for token_role, amount_role in (
            (ArgRole.TOKEN_A, ArgRole.AMOUNT_A_DESIRED),
            (ArgRole.TOKEN_B, ArgRole.AMOUNT_B_DESIRED),
        ):
            if token_role in a and amount_role in a:
                out.append(ExpectedDelta(token=a[token_role], min_delta=-int(a[amount_role])))
        if len(out) == 2:
            return out, None
        return [], f"{name} does not declare both tokens and both desired amounts"
    spent = a.values.get(ArgRole.AMOUNT_IN, a.values.get(ArgRole.MAX_IN))
    if spent is not None:
        if ArgRole.PATH in a and len(a[ArgRole.PATH]) >= 1:
            token_in = a[ArgRole.PATH][0]
        elif ArgRole.TOKEN_IN in a:
            token_in = a[ArgRole.TOKEN_IN]
        else:
            return [], f"{name} declares an amount in but no path or token in"
        return [ExpectedDelta(token=token_in, min_delta=-int(spent))], None
    if ArgRole.MIN_OUT in a and req.function.payable:
        return [], None  # swapping the ETH sent with the call: counted by the caps
    if ArgRole.LIQUIDITY in a:
        return [], f"{name} spends liquidity tokens, which the signer has no price for"
    if set(req.function.arg_roles.values()) - {
        ArgRole.RECIPIENT,
        ArgRole.SPENDER,
        ArgRole.DEADLINE,
    }:
        return [], f"{name} is a trade whose spend the signer cannot read from its arguments"
    return [], None


@dataclasses.dataclass(frozen=True)
class SafeRoute:
    """With a Safe, the key's only call: `guard.execute(to, value, data, operation)`, run by
    the Safe; operation 1 (DELEGATECALL) only into MultiSendCallOnly's `multiSend(bytes)`."""

    safe: str
    guard: str
    multi_send: str


EXECUTE = "execute(address to,uint256 value,bytes data,uint8 operation)"
MULTI_SEND = "multiSend(bytes transactions)"


def safe_calls(tx: UnsignedTx, route: SafeRoute) -> tuple[list[tuple[str, int, str]], str | None]:
    """The calls the Safe would make for this transaction, or why it is not a guard call."""
    if tx.to is None or tx.to.lower() != route.guard.lower():
        return [], f"with a Safe, this key only calls its guard {route.guard}, not {tx.to}"
    if tx.value:
        return [], "the guard's execute takes no ETH; the Safe pays from its own balance"
    try:
        outer = decode_call(EXECUTE, tx.data)
    except CalldataError as exc:
        return [], f"the call to the guard is not execute(to, value, data, operation): {exc}"
    to, value, data, operation = (outer.args[k] for k in ("to", "value", "data", "operation"))
    if operation == 0:
        return [(to, int(value), "0x" + bytes(data).hex())], None
    if operation != 1 or to.lower() != route.multi_send.lower():
        return [], "a delegatecall from the Safe may only go to its MultiSendCallOnly"
    try:
        packed = bytes(decode_call(MULTI_SEND, "0x" + bytes(data).hex()).args["transactions"])
    except CalldataError as exc:
        return [], f"the delegatecall is not multiSend(bytes): {exc}"
    calls, i = [], 0
    while i < len(packed):
        if len(packed) - i < 85:
            return [], "the MultiSend batch is cut short"
        op, target = packed[i], "0x" + packed[i + 1 : i + 21].hex()
        amount = int.from_bytes(packed[i + 21 : i + 53], "big")
        size = int.from_bytes(packed[i + 53 : i + 85], "big")
        body = packed[i + 85 : i + 85 + size]
        if op != 0 or len(body) != size:
            return [], "a MultiSend batch may only hold whole plain calls (operation 0)"
        calls.append((checksum(target), amount, "0x" + body.hex()))
        i += 85 + size
    if not calls:
        return [], "the MultiSend batch is empty"
    return calls, None


class SpendRecord(BaseModel):
    at: float
    nonce: int
    value: float


class NonceSpendLedger:
    """What the signer signed, valued, in a sliding window; one spend per nonce (a fee bump
    re-signs the same nonce, and only one of the two can ever be mined). Persisted as JSON
    lines, so a restart does not reset the cap; a damaged line refuses the start."""

    def __init__(self, path: Path, window_seconds: float) -> None:
        self.path, self.window = path, window_seconds
        self._by_nonce: dict[int, SpendRecord] = {}
        self._file: TextIO | None = None
        if path.exists():
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    record = SpendRecord.model_validate_json(line)
                except ValueError:
                    raise Refused(
                        f"line {number} of the signer's spend ledger {path} is not a record; "
                        "the window cap cannot be trusted (restore it or move it away)"
                    ) from None
                self._keep(record)

    def _keep(self, record: SpendRecord) -> None:
        old = self._by_nonce.get(record.nonce)
        if old is None or record.value >= old.value:
            self._by_nonce[record.nonce] = record

    def spent(self, now: float) -> float:
        # Records out of the window are forgotten (a nonce signed again later counts again:
        # the conservative side), so the work per request stays bounded.
        old = [n for n, r in self._by_nonce.items() if now - r.at >= self.window]
        for nonce in old:
            del self._by_nonce[nonce]
        return sum(r.value for r in self._by_nonce.values())

    def already(self, nonce: int) -> float:
        old = self._by_nonce.get(nonce)
        return old.value if old is not None else 0.0

    def add(self, now: float, nonce: int, value: float) -> None:
        record = SpendRecord(at=now, nonce=nonce, value=value)
        self._keep(record)
        if self._file is None:  # kept open: one write per signature, no open/close
            self._file = self.path.open("a")
        self._file.write(json.dumps(record.model_dump()) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


@dataclasses.dataclass(frozen=True)
class Judgement:
    decision: Decision
    value: float  # numeraire value the transaction can spend
    block: int | None  # the block its code pins were read at


class SignerPolicy:
    """Judges transactions for one key. Thread-safe: judging and recording a spend are one
    step under a lock (two concurrent requests cannot both fit under the window cap)."""

    def __init__(
        self,
        *,
        allowlist: ActiveAllowlist,
        account: str,
        rules: list[Rule[Any]],
        assets: list[AssetPrice],
        kill_switch: KillSwitchState,
        ledger: NonceSpendLedger,
        rpc: BatchRpcClient,
        clock: Callable[[], float] = time.time,
        safe: SafeRoute | None = None,
    ) -> None:
        self.allowlist, self.account, self.safe = allowlist, account, safe
        self.guard = Guard(rules)
        self.cap_rules = [r for r in rules if r.id in CAP_RULES]
        self.guard_without_caps = Guard([r for r in rules if r.id not in CAP_RULES])
        self.prices = {a.asset: a.per_unit for a in assets}
        self.kill_switch, self.ledger, self.rpc, self.clock = kill_switch, ledger, rpc, clock
        self.lock = threading.Lock()
        caps = {r.id: r.config for r in rules}
        cap = caps.get("value-cap-per-tx")
        self._per_tx_cap = float(cap.max_value) if cap is not None else math.inf

    def judge(self, tx: UnsignedTx) -> Judgement:
        """Call with `self.lock` held from judging to `record` (see SignerPolicy)."""
        if tx.to is None:
            return self._alone(NOT_A_CALL, "contract creation is never signed here")
        if tx.data in ("0x", ""):
            return self._alone(
                NOT_A_CALL, "a transaction without calldata (a bare transfer) is never signed here"
            )
        if self.safe is not None:  # the key only drives the Safe's guard: judge what it runs
            calls, problem = safe_calls(tx, self.safe)
            if problem:
                return self._alone(SAFE_CALL_SHAPE, problem)
        else:
            calls = [(tx.to, tx.value, tx.data)]
        ctx = self._context(tx)
        prepared = []
        for to, value, data in calls:
            call = PlannedCall(
                intent_id="signer",
                intent_kind="",
                target=to,
                data=data,
                value=value,
                sender=self.account,
            )
            req = GuardRequest.build(call, ctx)
            deltas, unreadable = spend_of(req)
            call = call.model_copy(
                update={"expected": deltas, "allowed_approvals": self._approval_bounds(req)}
            )
            # The call decoded once: only what the rules read from the plan was added to it.
            prepared.append((dataclasses.replace(req, call=call), unreadable))
        involved = [
            address
            for req, _ in prepared
            for address in [req.call.target]
            + ([a for _, a in address_args(req.decoded)] if req.decoded else [])
        ]
        block = None
        if any(ctx.entry(a) is not None for a in involved):
            block, stamp, hashes, impls = self._read_pins(involved)
            ctx = dataclasses.replace(
                ctx,
                block_number=block,
                block_timestamp=stamp,
                codehashes=hashes,
                implementations=impls,
            )
        # Spent in the window, less what an earlier signature of this nonce already counted.
        spent = self.ledger.spent(ctx.now) - self.ledger.already(tx.nonce)
        ctx = dataclasses.replace(ctx, spent_in_window=max(0.0, spent))
        verdicts: list[Verdict] = []
        single = len(prepared) == 1
        for req, unreadable in prepared:
            guard = self.guard if single else self.guard_without_caps
            verdicts += guard.decide_request(req, ctx).verdicts
            verdicts.append(
                Verdict.refuse(SPEND_READABLE, unreadable)
                if unreadable
                else Verdict.allow(SPEND_READABLE)
            )
        # A batch is capped as a whole: the value rules judge what all its calls spend.
        whole = PlannedCall(
            intent_id="signer",
            intent_kind="",
            target=prepared[0][0].call.target,
            data="0x",
            value=sum(req.call.value for req, _ in prepared),
            sender=self.account,
            expected=[d for req, _ in prepared for d in req.call.expected],
        )
        if not single:
            batch = GuardRequest(
                call=whole, entry=None, function=None, decoded=None, decode_error=None
            )
            verdicts += (
                Guard(self.cap_rules, require_floor=False).decide_request(batch, ctx).verdicts
            )
        worth, _ = outflow_value(whole, self.prices)
        return Judgement(
            Decision(verdicts=verdicts), worth if math.isfinite(worth) else math.inf, block
        )

    def _context(self, tx: UnsignedTx) -> GuardContext:
        status = getattr(self.kill_switch, "status", None)
        if callable(status):  # one read of the switch file: its state and its reason
            switch = status()
            on, reason = bool(switch.on), str(switch.reason)
        else:
            on, reason = self.kill_switch.is_on(), ""
        if tx.type == 2:
            tip = int(tx.maxPriorityFeePerGas or 0)
            fees = FeeQuote(
                base_fee_per_gas=max(0, int(tx.maxFeePerGas or 0) - tip),
                max_priority_fee_per_gas=tip,
            )
        else:  # a legacy price is base fee and tip at once
            fees = FeeQuote(base_fee_per_gas=int(tx.gasPrice or 0), max_priority_fee_per_gas=0)
        return GuardContext(
            agent=self.account,
            chain_id=tx.chainId,
            allowlist=self.allowlist,
            now=int(self.clock()),
            kill_switch_on=on,
            kill_switch_reason=reason,
            prices=self.prices,
            fees=fees,
        )

    def record(self, tx: UnsignedTx, judgement: Judgement) -> None:
        self.ledger.add(self.clock(), tx.nonce, judgement.value)

    def _alone(self, rule: str, reason: str) -> Judgement:
        return Judgement(Decision(verdicts=[Verdict.refuse(rule, reason)]), 0.0, None)

    def _approval_bounds(self, req: GuardRequest) -> dict[str, int]:
        """An approval may grant at most what one transaction may spend of that token (the
        signer knows no plan; its per-transaction cap is the most any plan could need)."""
        if req.decoded is None or req.decoded.function.name not in APPROVAL_FUNCTIONS:
            return {}
        spender, per_unit = approval_spender(req.decoded), self.prices.get(req.call.target)
        if spender is None or not per_unit or not math.isfinite(self._per_tx_cap):
            return {}
        return {f"{req.call.target}:{spender}": int(self._per_tx_cap / per_unit)}

    def _read_pins(
        self, addresses: list[str]
    ) -> tuple[int, int, dict[str, str], dict[str, tuple[str, str]]]:
        """(block, its timestamp, code hashes, proxies' implementations) of the allowlisted
        contracts the call names, read now through the signer's own RPC, at one block."""
        wanted = {a.lower() for a in addresses}
        entries = {
            a: e for a, e in self.allowlist.entries.items() if a.lower() in wanted and not e.revoked
        }
        subset = ActiveAllowlist(chain_id=self.allowlist.chain_id, entries=entries)
        try:
            if all(e.proxy is None for e in entries.values()):
                # No proxy: one round trip, the block read in the same batch.
                answers = self.rpc.batch(
                    [
                        ("eth_getBlockByNumber", ["latest", False]),
                        *[("eth_getCode", [a, "latest"]) for a in entries],
                    ]
                )
                block, stamp = int(answers[0]["number"], 16), int(answers[0]["timestamp"], 16)
                hashes = {a: codehash(c) for a, c in zip(entries, answers[1:], strict=True)}
                return block, stamp, hashes, {}
            head = self.rpc.call("eth_getBlockByNumber", "latest", False)
            block, stamp = int(head["number"], 16), int(head["timestamp"], 16)
        except (RpcError, TypeError, ValueError, KeyError) as exc:
            raise InfraError(f"the signer could not read the contracts' code: {exc}") from exc
        hashes, impls = observe_code(self.rpc, subset, block)
        return block, stamp, hashes, impls
