"""What `make demo` needs to show the private relay in use.

    with demo_relay(node.url) as relay:                  # the local relay emulator, started
        cfg = with_private_broadcast(cfg, relay.url)     # [broadcast] mode = "private"
        ... run the agent ...
        use = relay_use(relay, runtime.audit_path)       # what went through it, for a table

The relay is the emulator from defiagent/testing/relay.py in front of the demo's anvil: it
includes each private transaction or bundle in the next block, so the demo runs at its
usual pace; a plan of several calls (approve, then swap) goes as one bundle; no
transaction of the agent touches the public mempool (`public_sends` stays 0).
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
    bundles: int  # bundles the agent submitted (each offered for every block of its window)
    included: int  # the agent's private transactions the relay landed on chain
    expired: int  # the agent's private transactions whose window passed without them
    public_sends: int  # the agent's transactions sent to the public mempool (fallback)
    tx_hashes: list[str]  # what the agent sent privately (alone or bundled), from its audit log


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
    bundles = kinds.get("broadcast.bundle-submitted", [])
    sent = [str(p.get("tx_hash")) for p in kinds.get("broadcast.private-submitted", [])]
    sent += [str(h) for p in bundles for h in p["tx_hashes"]]
    sent = list(dict.fromkeys(sent))  # a re-send is the same transaction
    # What became of each transaction, over every request that carried it.
    fates = [{held.state for held in relay.find(tx)} for tx in sent]
    return RelayUse(
        relay=relay.url,
        private_submissions=len(relay.calls("eth_sendPrivateTransaction")),
        bundles=len(bundles),
        included=sum(1 for states in fates if "included" in states),
        expired=sum(
            1 for states in fates if "expired" in states and not states & {"included", "pending"}
        ),
        public_sends=len(kinds.get("broadcast.public-sent", [])),
        tx_hashes=sent,
    )
