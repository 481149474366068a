"""The devnet traders' swaps: each registered protocol's `devnet_traders` hook, asked with
what `devnet up` deployed (Uniswap V2's moves the DUSD/DTKN pair, V3's its pools). A
protocol without the hook deploys but is not traded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from web3 import Web3

from defiagent.protocols import registry
from defiagent.protocols.base import DevnetDeployment

Mover = Callable[[], str]


def movers(w3: Web3, deployments: dict[str, dict[str, Any]]) -> list[tuple[str, Mover]]:
    deployed = {k: DevnetDeployment.model_validate(v) for k, v in deployments.items()}
    return [t for adapter in registry.PROTOCOLS for t in adapter.devnet_traders(w3, deployed)]
