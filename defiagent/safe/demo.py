"""`defiagent demo --safe`: the demo's agent trading from a Safe, and a stolen key's attempts.

The Safe (real Safe 1.4.1 bytecode) is owned by two throwaway operator keys (2 of 2) that
sign the guard's first sync like any later one; the Safe holds the funds, the agent's key
only gas. After the ticks, calls forged with the agent's own key and sent straight to the
chain (past the planner, the guard, the simulation) are each mined and reverted by the guard.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_abi import encode as abi_encode
from eth_account import Account
from eth_utils import function_signature_to_4byte_selector
from pydantic import BaseModel, ConfigDict
from web3 import Web3

from defiagent.agent.devnet import UNIT, DemoMarket, fund
from defiagent.allowlist.models import ActiveAllowlist
from defiagent.safe import sync
from defiagent.safe.config import SafeConfig
from defiagent.safe.deploy import SafeDeployment, deploy_infra, deploy_safe
from defiagent.safe.forge import send_forged
from defiagent.safe.multisend import encode_multisend
from defiagent.safe.runtime import wanted_config
from defiagent.safe.safe_tx import DELEGATECALL


class ForgedCall(BaseModel):
    model_config = ConfigDict(frozen=True)

    attempt: str
    tx_hash: str
    executed: bool
    error: str | None
    reason: str


def _data(signature: str, types: list[str], values: list[Any]) -> str:
    return (
        "0x" + (function_signature_to_4byte_selector(signature) + abi_encode(types, values)).hex()
    )


def setup_demo_safe(
    w3: Web3,
    market: DemoMarket,
    agent_key: Any,
    allowlist: ActiveAllowlist,
    workdir: Path,
    step: Callable[[str], None],
) -> tuple[SafeDeployment, SafeConfig]:
    step("deploying Safe 1.4.1 (npm bytecode) and its AllowlistGuard")
    owners = [Account.create(), Account.create()]
    infra = deploy_infra(w3, agent_key)
    dep = deploy_safe(
        w3,
        agent_key,
        owners=[o.address for o in owners],
        threshold=2,
        agent=agent_key.address,
        infra=infra,
    )
    step("the two Safe owners approving the guard's rules (sync-guard, 2 of 2)")
    want = wanted_config(allowlist, infra.multi_send)
    path = workdir / "safe" / f"sync-guard-{secrets.token_hex(4)}.json"
    sync.propose(w3, dep.ref, want, path)
    for owner in owners:
        sync.approve(w3, dep.ref, path, owner, want)
    sync.execute(w3, dep.ref, path, agent_key, want)
    fund(w3, market, dep.safe, eth=10 * UNIT, dusd=50_000 * UNIT, dtkn=100_000 * UNIT)
    return dep, SafeConfig(address=dep.safe, guard=dep.guard, multi_send=infra.multi_send)


def forged_attacks(
    w3: Web3,
    market: DemoMarket,
    agent_key: Any,
    dep: SafeDeployment,
    *,
    v3_router: str | None = None,
) -> list[ForgedCall]:
    """What a thief with the agent's key sends straight to the chain; each one refused there.
    With `v3_router` (Uniswap V3's SwapRouter), also a V3 swap paying the thief: its
    recipient is a field of a struct argument, checked by the guard all the same."""
    d, safe = market.dex, dep.safe
    thief = Account.create().address
    deadline = w3.eth.get_block("latest")["timestamp"] + 600
    approve = _data("approve(address,uint256)", ["address", "uint256"], [d.router, UNIT])
    steal = _data("transfer(address,uint256)", ["address", "uint256"], [thief, 1_000 * UNIT])
    swap_to_thief = _data(
        "swapExactTokensForTokens(uint256,uint256,address[],address,uint256)",
        ["uint256", "uint256", "address[]", "address", "uint256"],
        [UNIT, 0, [d.token_b, d.token_a], thief, deadline],
    )
    attempts: list[tuple[str, str, str, int]] = [
        ("transfer the Safe's DUSD to the thief", d.token_a, steal, 0),
        (
            "approve the thief for unlimited DTKN",
            d.token_b,
            _data("approve(address,uint256)", ["address", "uint256"], [thief, 2**256 - 1]),
            0,
        ),
        ("swap with the proceeds sent to the thief", d.router, swap_to_thief, 0),
        *(
            [
                (
                    "swap on Uniswap V3 with the proceeds sent to the thief",
                    v3_router,
                    _data(
                        "exactInputSingle((address,address,uint24,address,uint256,uint256,"
                        "uint256,uint160))",
                        ["(address,address,uint24,address,uint256,uint256,uint256,uint160)"],
                        [(d.token_b, d.token_a, 3000, thief, deadline, UNIT, 0, 0)],
                    ),
                    0,
                )
            ]
            if v3_router is not None
            else []
        ),
        (
            "make the thief an owner of the Safe",
            safe,
            _data("addOwnerWithThreshold(address,uint256)", ["address", "uint256"], [thief, 1]),
            0,
        ),
        ("delegatecall into the router from the Safe", d.router, swap_to_thief, DELEGATECALL),
        (
            "hide a transfer in a MultiSend after an honest approve",
            dep.infra.multi_send,
            encode_multisend([(d.token_a, 0, approve), (d.token_a, 0, steal)]),
            DELEGATECALL,
        ),
    ]
    names = {
        d.token_a: "DUSD",
        d.token_b: "DTKN",
        d.router: "the router",
        safe: "the Safe",
        "0xa9059cbb": "transfer",
        "0x095ea7b3": "approve",
        "0x38ed1739": "swapExactTokensForTokens",
        "0x414bf389": "exactInputSingle",
    }
    if v3_router is not None:
        names[v3_router] = "the Uniswap V3 router"
    out = []
    for label, to, data, operation in attempts:
        result = send_forged(w3, agent_key, dep.ref, to, 0, data, operation, names=names)
        out.append(
            ForgedCall(
                attempt=label,
                tx_hash=result.tx_hash,
                executed=result.status == 1,
                error=result.error,
                reason=result.reason,
            )
        )
    return out
