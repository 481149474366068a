"""Run the exact planned transaction on the fork and report what it did.

One HTTP round trip on the hot path, a JSON-RPC batch of:
  * eth_simulateV1 (traceTransfers): the call from the agent's address with the same
    to/data/value, wrapped in balanceOf reads of every token the plan names, so token
    deltas are measured balances (fee-on-transfer and log-less moves included), ETH moves
    come back as pseudo Transfer logs, and nothing is mined: the fork needs no revert;
  * debug_traceCall (callTracer): every contract the call entered.
A sequence (approve then swap) runs in one eth_simulateV1 block; call k is traced on the
state calls 1..k-1 leave (their prestate diffs as state overrides).
The code of every contract the call entered is read on the fork at the simulated block
(eth_getCode, in the same batch for the contracts the target reached last time): its hash
goes into the outcome (`fork_codehashes`), with the DELEGATECALLs the trace shows
(`delegations`), so the code that was simulated can be compared with the pins.
Anything that stops the simulation from running raises InfraError: the caller refuses.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address

from defiagent.chain.rpc import RpcError
from defiagent.errors import InfraError
from defiagent.execution.models import PlannedCall
from defiagent.simulation import decode
from defiagent.simulation.batch import BatchRpcClient
from defiagent.simulation.fork import ForkManager
from defiagent.simulation.models import SimulationOutcome, TokenMeta

# Reads run from an address nobody controls; they never touch the agent's nonce.
READER = "0x000000000000000000000000000000000000dEaD"
_BALANCE_OF = bytes.fromhex("70a08231")
_SYMBOL = "0x95d89b41"
_DECIMALS = "0x313ce567"
_MAX_REMEMBERED_TARGETS = 256  # targets whose callees are read in the first batch
EMPTY_CODEHASH = "0x" + keccak(b"").hex()  # an account without code


def _tx(call: PlannedCall) -> dict[str, Any]:
    return {"from": call.sender, "to": call.target, "data": call.data, "value": hex(call.value)}


def _balance_call(token: str, owner: str) -> dict[str, Any]:
    data = "0x" + (_BALANCE_OF + abi_encode(["address"], [owner])).hex()
    return {"from": READER, "to": token, "data": data}


def _preview_call(call: PlannedCall) -> dict[str, Any]:
    assert call.share_preview is not None
    return {"from": READER, "to": call.share_preview.vault, "data": call.share_preview.data}


def _plan_tokens(calls: Sequence[PlannedCall]) -> list[str]:
    tokens: dict[str, None] = {}
    for call in calls:
        for expected in call.expected:
            if expected.token is not None:
                tokens.setdefault(to_checksum_address(expected.token), None)
        for key in call.allowed_approvals:
            tokens.setdefault(to_checksum_address(key.split(":", 1)[0]), None)
    return list(tokens)


class Simulator:
    """Simulate planned calls on a ForkManager's fork. Not thread-safe; one per agent loop."""

    def __init__(self, fork: ForkManager, *, sync: bool = True, prefetch: bool = True) -> None:
        self.fork = fork
        self.sync = sync  # move the fork to the upstream head before each simulation
        # target -> the addresses its last simulation entered: their code is read in the
        # simulation's first batch, so reading the simulated code costs no extra round trip
        # in the steady state (a new callee costs one).
        self._callees: dict[str, list[str]] = {}
        # address -> codehash on the fork, for one fork block (number, hash): nothing is
        # mined on the fork, so its code only changes when it is reset to another block.
        self._code_block: tuple[int, str | None] | None = None
        self._fork_code: dict[str, str] = {}
        self._token_meta: dict[str, TokenMeta] = {}
        # The last few plans simulated: what a new block's cold cache is warmed with.
        self._recent: deque[list[PlannedCall]] = deque(maxlen=3)
        if prefetch:
            fork.warmers.append(self._prefetch)

    def _prefetch(self) -> None:
        """After a background reset: replay the last calls (results dropped) so the state
        they read (pools, balances, code) is fetched from the upstream now, not on the hot
        path. Runs in the follower thread, so it uses its own connection."""
        plans = list(self._recent)
        if not plans:
            return
        client = BatchRpcClient(self.fork.url, timeout=self.fork.rpc_timeout)
        try:
            requests = []
            for calls in plans:  # each plan on its own: they are alternatives, not a sequence
                tokens = _plan_tokens(calls)
                sim_calls = [_balance_call(t, c.owner) for c in calls for t in tokens]
                sim_calls += [_tx(c) for c in calls]
                requests.append(
                    ("eth_simulateV1", [{"blockStateCalls": [{"calls": sim_calls}]}, "latest"])
                )
            client.batch(requests)
        finally:
            client.close()

    # -- public API ----------------------------------------------------------------------
    def simulate(
        self, call: PlannedCall, *, prior_calls: Sequence[PlannedCall] = ()
    ) -> SimulationOutcome:
        """The outcome of `call`, run after `prior_calls` (e.g. its approve) in one block."""
        outcomes = self.simulate_sequence([*prior_calls, call])
        last = outcomes[-1]
        for index, prior in enumerate(outcomes[:-1]):
            if not prior.success:
                what = prior_calls[index].description or prior_calls[index].intent_kind
                reason = f"prior call {index + 1} ({what}) reverted: {prior.revert_reason}"
                return last.model_copy(update={"success": False, "revert_reason": reason})
        return last

    def simulate_sequence(
        self, calls: Sequence[PlannedCall], *, trace: bool = True
    ) -> list[SimulationOutcome]:
        """One outcome per call, each run on the state the previous ones left.

        `trace=False` skips the call traces (one request instead of one per call): the
        outcomes then have deltas and success but no touched contracts or fork code, so
        they serve probes (the honeypot round trip), never the checks before a send."""
        if not calls:
            raise ValueError("nothing to simulate")
        try:
            if self.sync:
                self.fork.sync()
            with self.fork.lock:
                # Read under the lock: a follower thread may have moved the fork since sync().
                block = self.fork.block_number
                assert block is not None  # the fork was started, so it has a block
                if not self._recent or self._recent[-1] != list(calls):
                    self._recent.append(list(calls))
                return self._run(list(calls), block, trace=trace)
        except RpcError as exc:
            raise InfraError(
                f"the simulation could not run, so the transaction is refused: {exc}"
            ) from exc

    def token_meta(self, tokens: Sequence[str]) -> dict[str, TokenMeta]:
        """Symbol and decimals per token (cached), for reasons a person can read."""
        missing = [
            to_checksum_address(t) for t in tokens if to_checksum_address(t) not in self._token_meta
        ]
        if missing:
            requests = []
            for token in missing:
                requests.append(("eth_call", [{"to": token, "data": _SYMBOL}, "latest"]))
                requests.append(("eth_call", [{"to": token, "data": _DECIMALS}, "latest"]))
            try:
                answers = self.fork.rpc.batch(requests)
            except RpcError:
                answers = None
            for i, token in enumerate(missing):
                if answers is None:
                    break
                try:
                    symbol = abi_decode(["string"], bytes.fromhex(answers[2 * i][2:]))[0]
                    decimals = int(answers[2 * i + 1], 16)
                except Exception:  # noqa: S112 - a token without metadata prints raw units
                    continue
                self._token_meta[token] = TokenMeta(symbol=symbol, decimals=decimals)
        return {
            t: self._token_meta[t]
            for t in map(to_checksum_address, tokens)
            if t in self._token_meta
        }

    # -- internals -------------------------------------------------------------------------
    def _run(
        self, calls: list[PlannedCall], block: int, *, trace: bool = True
    ) -> list[SimulationOutcome]:
        tokens = _plan_tokens(calls)
        sim_calls: list[dict[str, Any]] = []
        # (before reads, the call, after reads, the share preview read or None)
        positions: list[tuple[int, int, int, int | None]] = []
        for call in calls:
            # An ERC-4626 call's preview, on the state the call itself will meet (after the
            # prior calls, same block): what the vault promises, to compare with what it does.
            preview = None
            if call.share_preview is not None:
                preview = len(sim_calls)
                sim_calls.append(_preview_call(call))
            before = len(sim_calls)
            sim_calls += [_balance_call(t, call.owner) for t in tokens]
            index = len(sim_calls)
            sim_calls.append(_tx(call))
            after = len(sim_calls)
            sim_calls += [_balance_call(t, call.owner) for t in tokens]
            positions.append((before, index, after, preview))
        tag = hex(block)
        # The next block's timestamp, as the chain will give it: time-dependent state
        # (Uniswap's price accumulators, deadlines) then costs the gas it will cost on chain.
        when = max(int(time.time()), self.fork.block_timestamp + 1)
        state_calls = {"blockOverrides": {"time": hex(when)}, "calls": sim_calls}
        simulate = (
            "eth_simulateV1",
            [{"blockStateCalls": [state_calls], "traceTransfers": True, "validation": False}, tag],
        )
        if self._code_block != (block, self.fork.block_hash):
            self._code_block, self._fork_code = (block, self.fork.block_hash), {}
        known = self._fork_code
        guess = [
            a
            for a in dict.fromkeys(a for c in calls for a in self._callees.get(c.target, []))
            if a not in known
        ]
        if trace:
            result, traces, codes = self._simulate_and_trace(simulate, calls, tag, guess)
        else:
            result, traces, codes = self.fork.rpc.batch([simulate])[0], [{}] * len(calls), {}
        known.update((a, _codehash(code)) for a, code in codes.items())
        try:
            results = result[0]["calls"]
        except (TypeError, KeyError, IndexError) as exc:
            raise InfraError("the fork returned a simulation result that cannot be read") from exc
        if len(results) != len(sim_calls):
            raise InfraError("the fork returned a simulation result for the wrong number of calls")
        per_trace = [decode.trace_targets(t or {}) for t in traces]
        missing = list(
            dict.fromkeys(a for called, _ in per_trace for a in called if a not in known)
        )
        if missing:
            answers = self.fork.rpc.batch([("eth_getCode", [a, tag]) for a in missing])
            known.update((a, _codehash(code)) for a, code in zip(missing, answers, strict=True))
        for call, (called, _) in zip(calls, per_trace, strict=True):
            self._callees.pop(call.target, None)
            self._callees[call.target] = called
            if len(self._callees) > _MAX_REMEMBERED_TARGETS:
                self._callees.pop(next(iter(self._callees)))
        outcomes = []
        for call, (before, index, after, preview), (called, created), call_trace in zip(
            calls, positions, per_trace, traces, strict=True
        ):
            outcomes.append(
                self._outcome(
                    call,
                    block,
                    results[index],
                    tokens,
                    results[before:index],
                    results[after : after + len(tokens)],
                    [a for a in called if known[a] != EMPTY_CODEHASH] + created,
                    fork_codehashes={a: known[a] for a in called},
                    delegations=_delegations(call_trace or {}),
                    previewed_shares=None if preview is None else _uint(results[preview]),
                )
            )
        return outcomes

    def _outcome(
        self,
        call: PlannedCall,
        block: int,
        res: dict[str, Any],
        tokens: list[str],
        before: list[dict[str, Any]],
        after: list[dict[str, Any]],
        touched: list[str],
        *,
        fork_codehashes: dict[str, str],
        delegations: dict[str, list[str]],
        previewed_shares: int | None = None,
    ) -> SimulationOutcome:
        success = res.get("status") == "0x1"
        logs, eth_moves = decode.split_logs(res.get("logs") or [])
        deltas = decode.deltas_from_logs(logs, eth_moves, call.owner)
        # A measured balance beats what the logs claim (fee-on-transfer, rebasing, no event).
        for token, pre, post in zip(tokens, before, after, strict=True):
            if pre.get("status") == "0x1" and post.get("status") == "0x1":
                change = _word(post) - _word(pre)
                if change:
                    deltas[token] = change
                else:
                    deltas.pop(token, None)
        revert_data = None if success else (res.get("returnData") or "0x")
        message = (res.get("error") or {}).get("message")
        return SimulationOutcome(
            success=success,
            revert_reason=None if success else decode.revert_reason(revert_data, message),
            gas_used=int(res.get("gasUsed", "0x0"), 16),
            block_number=block,
            logs=logs,
            deltas=deltas,
            approvals=decode.approvals_from_logs(logs, call.owner) if success else [],
            touched=touched,
            revert_data=revert_data,
            sender=call.owner,
            fork_codehashes=fork_codehashes,
            delegations=delegations,
            previewed_shares=previewed_shares,
        )

    def _simulate_and_trace(
        self,
        simulate: tuple[str, list[Any]],
        calls: list[PlannedCall],
        tag: str,
        code_reads: Sequence[str] = (),
    ) -> tuple[Any, list[dict[str, Any]], dict[str, str]]:
        """eth_simulateV1 for the whole plan, a call trace per call, and the code at `tag`
        of `code_reads` (read in the first batch).

        Call k is traced on the state calls 1..k-1 leave: their prestate diffs become the
        state overrides of its debug_traceCall. Nothing is mined or reverted on the fork,
        and a plan of n calls costs n round trips (the first one shared with the simulation).
        """
        rpc = self.fork.rpc
        overrides: dict[str, dict[str, Any]] = {}
        traces: list[dict[str, Any]] = []
        result: Any = None
        codes: dict[str, str] = {}
        for n, call in enumerate(calls):
            last = n == len(calls) - 1
            requests = [simulate] if n == 0 else []
            requests.append(("debug_traceCall", [_tx(call), tag, _tracer("callTracer", overrides)]))
            if not last:
                diff = _tracer("prestateTracer", overrides, {"diffMode": True})
                requests.append(("debug_traceCall", [_tx(call), tag, diff]))
            reads = list(code_reads) if n == 0 else []
            requests += [("eth_getCode", [a, tag]) for a in reads]
            answers = rpc.batch(requests)
            if reads:
                codes.update(zip(reads, answers[-len(reads) :], strict=True))
                answers = answers[: -len(reads)]
            if n == 0:
                result, answers = answers[0], answers[1:]
            traces.append(answers[0])
            if not last:
                overrides = _apply_diff(overrides, answers[1])
        return result, traces, codes


def _codehash(code: str | None) -> str:
    return "0x" + keccak(hexstr=code or "0x").hex()


def _delegations(frame: dict[str, Any]) -> dict[str, list[str]]:
    """From a callTracer tree: caller -> the addresses whose code it ran by DELEGATECALL or
    CALLCODE (a proxy -> the implementation it used)."""
    out: dict[str, dict[str, None]] = {}
    stack = [frame]
    while stack:
        node = stack.pop()
        kind = (node.get("type") or "").upper()
        if kind in ("DELEGATECALL", "CALLCODE") and node.get("from") and node.get("to"):
            caller = to_checksum_address(node["from"])
            out.setdefault(caller, {})[to_checksum_address(node["to"])] = None
        stack.extend(reversed(node.get("calls") or []))
    return {caller: list(targets) for caller, targets in out.items()}


def _tracer(
    name: str, overrides: dict[str, Any], config: dict[str, Any] | None = None
) -> dict[str, Any]:
    options: dict[str, Any] = {"tracer": name}
    if config:
        options["tracerConfig"] = config
    if overrides:
        options["stateOverrides"] = overrides
    return options


_ZERO_WORD = "0x" + "00" * 32


def _apply_diff(overrides: dict[str, dict[str, Any]], diff: Any) -> dict[str, dict[str, Any]]:
    """Fold a prestateTracer diff (diffMode) into state overrides for the next call.

    In diff mode both sides list only what changed: a slot in `pre` but not in `post` was
    cleared, an account in `pre` but not in `post` was deleted.
    """
    if not isinstance(diff, dict) or "post" not in diff:
        raise InfraError("the fork returned a state diff that cannot be read")
    # Copy the nested slot maps too: earlier overrides stay as they were.
    merged = {
        addr: {k: dict(v) if isinstance(v, dict) else v for k, v in acct.items()}
        for addr, acct in overrides.items()
    }
    pre, post = diff.get("pre") or {}, diff.get("post") or {}
    for addr, acct in pre.items():
        if addr not in post:
            merged[addr] = {"balance": "0x0", "nonce": "0x0", "code": "0x", "state": {}}
            continue
        cleared = set(acct.get("storage") or {}) - set(post[addr].get("storage") or {})
        if cleared:
            target = merged.setdefault(addr, {})
            slots = target.setdefault("state" if "state" in target else "stateDiff", {})
            slots.update(dict.fromkeys(cleared, _ZERO_WORD))
    for addr, acct in post.items():
        target = merged.setdefault(addr, {})
        for key in ("balance", "code"):
            if key in acct:
                target[key] = acct[key]
        if "nonce" in acct:
            nonce = acct["nonce"]
            target["nonce"] = hex(nonce) if isinstance(nonce, int) else nonce
        if acct.get("storage"):
            target.setdefault("state" if "state" in target else "stateDiff", {}).update(
                acct["storage"]
            )
    return merged


def _uint(res: dict[str, Any]) -> int | None:
    """A view's uint256 answer; None if it reverted or answered anything but one word."""
    data = (res.get("returnData") or "0x").removeprefix("0x")
    if res.get("status") != "0x1" or len(data) != 64:
        return None
    return int(data, 16)


def _word(res: dict[str, Any]) -> int:
    data = (res.get("returnData") or "0x").removeprefix("0x")
    return int(data[:64], 16) if len(data) >= 64 else 0
