"""Is the Safe's guard what the signed allowlist says? (`defiagent safe status`)"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from web3 import Web3

from defiagent.safe.chain import SafeRef, SafeState, code_problems, read_state
from defiagent.safe.rules import GuardConfig, config_diff


class SafeStatus(BaseModel):
    model_config = ConfigDict(frozen=True)

    safe: str
    guard: str
    agent: str
    owners: list[str]
    threshold: int
    module_enabled: bool
    want_config_hash: str
    chain_config_hash: str
    diff: list[str]  # what sync-guard would change
    problems: list[str]  # each a reason the Safe cannot be trusted as configured
    # Allowlisted functions the guard cannot check, so the Safe can never call them.
    left_out: list[str] = []

    @property
    def in_sync(self) -> bool:
        return not self.problems


def safe_status(
    w3: Web3, ref: SafeRef, want: GuardConfig, *, agent: str | None = None
) -> tuple[SafeStatus, SafeState]:
    state = read_state(w3, ref)
    problems = code_problems(state, ref)
    if state.guard_safe.lower() != ref.address.lower():
        problems.append(
            f"the guard {ref.guard} serves the Safe {state.guard_safe}, not {ref.address}"
        )
    if not state.module_enabled:
        problems.append(f"the guard {ref.guard} is not an enabled module of the Safe")
    if agent is not None and state.agent.lower() != agent.lower():
        problems.append(f"the guard lets {state.agent} trade, not the configured agent {agent}")
    if state.agent.lower() in {o.lower() for o in state.owners}:
        problems.append(
            f"the agent {state.agent} is an owner of the Safe: it could sign past the guard"
        )
    diff = config_diff(want, state.config)
    if state.config_hash != want.config_hash:
        problems.append(
            f"the guard's configuration {state.config_hash} is not the allowlist's "
            f"{want.config_hash} ({len(diff)} difference(s)); run `defiagent safe sync-guard`"
        )
    elif state.config is None or state.config.config_hash != state.config_hash:
        problems.append("the guard's configuration event does not match its stored hash")
    return (
        SafeStatus(
            safe=ref.address,
            guard=ref.guard,
            agent=state.agent,
            owners=state.owners,
            threshold=state.threshold,
            module_enabled=state.module_enabled,
            want_config_hash=want.config_hash,
            chain_config_hash=state.config_hash,
            diff=diff,
            problems=problems,
            left_out=list(want.left_out),
        ),
        state,
    )
