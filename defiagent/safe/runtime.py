"""The agent's start with `[safe]`: the Safe must be in sync before anything is planned."""

from __future__ import annotations

from web3 import Web3

from defiagent.allowlist.models import ActiveAllowlist
from defiagent.errors import Refused
from defiagent.safe import artifacts
from defiagent.safe.batch import SafeExecution, infra_entries, with_infra
from defiagent.safe.chain import SafeRef
from defiagent.safe.config import SafeConfig
from defiagent.safe.rules import GuardConfig, guard_config
from defiagent.safe.status import safe_status


def wanted_config(allowlist: ActiveAllowlist, multi_send: str) -> GuardConfig:
    return guard_config(
        allowlist,
        multi_send=multi_send,
        multi_send_codehash=artifacts.runtime_codehash(artifacts.multi_send_call_only()),
    )


def open_safe(
    rpc_url: str, cfg: SafeConfig, allowlist: ActiveAllowlist, key: str, chain_id: int
) -> SafeExecution:
    """Check the Safe (code, module, agent, rules) and return how the loop uses it."""
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 10}))
    ref = SafeRef(address=cfg.address, guard=cfg.guard, multi_send=cfg.multi_send)
    status, state = safe_status(w3, ref, wanted_config(allowlist, ref.multi_send), agent=key)
    if status.problems:
        raise Refused(
            f"the Safe {ref.address} is not ready for the agent: " + "; ".join(status.problems)
        )
    entries = infra_entries(ref, state.singleton, chain_id)
    return SafeExecution(ref=ref, agent_key=key, check_allowlist=with_infra(allowlist, entries))
