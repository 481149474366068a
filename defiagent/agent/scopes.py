"""The functions (and argument constraints) the agent needs on each kind of contract.

A thin view of the protocol registry's scopes (`defiagent.protocols`), kept because many
callers build allowlists from these four lists: Uniswap V2 Router02, its pairs, WETH9 and
plain ERC-20 tokens, each function with its constraints and argument roles.
"""

from __future__ import annotations

from defiagent.allowlist.models import AllowedFunction
from defiagent.protocols import registry
from defiagent.protocols.scopes import fn

__all__ = ["fn", "pair_functions", "router_functions", "token_functions", "weth_functions"]


def router_functions() -> list[AllowedFunction]:
    return list(registry.scope("uniswap-v2", "router").functions)


def token_functions() -> list[AllowedFunction]:
    return list(registry.scope("erc20", "token").functions)


def weth_functions() -> list[AllowedFunction]:
    return list(registry.scope("weth", "weth").functions)


def pair_functions() -> list[AllowedFunction]:
    return list(registry.scope("uniswap-v2", "pair").functions)
