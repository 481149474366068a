"""Where signed transactions go: the public mempool, or a private relay (`[broadcast]`).

    base.py     the Submitter protocol the executor sends through, and Expiry
    public.py   eth_sendRawTransaction to rpc_url (the default, today's path)
    private.py  eth_sendPrivateTransaction / eth_sendBundle / eth_cancelPrivateTransaction
    config.py   [broadcast] in agent.toml

The relay emulator the tests and the demo start is defiagent/testing/relay.py.
"""

from __future__ import annotations

from defiagent.broadcast.base import Expiry, Submitter
from defiagent.broadcast.config import BroadcastConfig, RelayPreferences
from defiagent.broadcast.private import PrivateSubmitter
from defiagent.broadcast.public import PublicSubmitter
from defiagent.chain.rpc import JsonRpcClient
from defiagent.monitoring.interfaces import AuditSink


def build_submitter(
    cfg: BroadcastConfig, chain: JsonRpcClient, *, audit: AuditSink | None = None
) -> Submitter:
    """The submitter `[broadcast]` asks for; `cfg.relay_url` must be resolved (at start)."""
    if cfg.mode == "private":
        return PrivateSubmitter.from_config(cfg, chain, audit)
    return PublicSubmitter(chain)


__all__ = [
    "BroadcastConfig",
    "Expiry",
    "PrivateSubmitter",
    "PublicSubmitter",
    "RelayPreferences",
    "Submitter",
    "build_submitter",
]
