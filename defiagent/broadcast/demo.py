"""What `make demo` needs to show the private relay in use.

    with demo_relay(node.url) as relay:                  # the local relay emulator, started
        cfg = with_private_broadcast(cfg, relay.url)     # [broadcast] mode = "private"
        ... run the agent ...
        use = relay_use(relay, runtime.audit_path)       # what went through it, for a table

The relay is the emulator from defiagent/testing/relay.py in front of the demo's anvil: it
includes each private transaction in the next block, so the demo runs at its usual pace;
no transaction of the agent touches the public mempool (`public_sends` stays 0).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from defiagent.broadcast.config import BroadcastConfig
from defiagent.testing.relay import RelayEmulator

if TYPE_CHECKING:
    from defiagent.config import AgentConfig


class RelayUse(BaseModel):
    model_config = ConfigDict(frozen=True)

    relay: str
    private_submissions: int  # eth_sendPrivateTransaction requests the relay received
    bundles: int  # eth_sendBundle requests
    included: int  # private transactions and bundles it landed on chain
    expired: int
    public_sends: int  # the agent's transactions sent to the public mempool (fallback)
    tx_hashes: list[str]  # what the agent sent privately, from its audit log


@contextlib.contextmanager
def demo_relay(upstream_url: str, **knobs: Any) -> Iterator[RelayEmulator]:
    """A relay emulator in front of `upstream_url` (the demo's anvil), stopped on exit."""
    with RelayEmulator(upstream_url, **knobs) as relay:
        yield relay


def with_private_broadcast(cfg: AgentConfig, relay_url: str, **settings: Any) -> AgentConfig:
    """`cfg` sending through `relay_url` (loopback http is allowed by the TLS rule)."""
    broadcast = BroadcastConfig(mode="private", relay_url=relay_url, **settings)
    return cfg.model_copy(update={"broadcast": broadcast})


def relay_use(relay: RelayEmulator, audit_path: Path) -> RelayUse:
    kinds: dict[str, list[dict[str, Any]]] = {}
    with contextlib.suppress(OSError):
        for line in audit_path.read_text().splitlines():
            with contextlib.suppress(ValueError, AttributeError, TypeError):
                record = json.loads(line)
                kinds.setdefault(record["kind"], []).append(record.get("payload") or {})
    summary = relay.summary()
    return RelayUse(
        relay=relay.url,
        private_submissions=len(relay.calls("eth_sendPrivateTransaction")),
        bundles=len(relay.calls("eth_sendBundle")),
        included=summary.get("included", 0),
        expired=summary.get("expired", 0),
        public_sends=len(kinds.get("broadcast.public-sent", [])),
        tx_hashes=[str(p.get("tx_hash")) for p in kinds.get("broadcast.private-submitted", [])],
    )
