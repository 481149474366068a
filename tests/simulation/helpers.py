"""Planned calls built by hand (the real planner is the agent engineer's), and funding."""

from __future__ import annotations

import time

from eth_abi import encode
from eth_utils import function_signature_to_4byte_selector as selector
from web3 import Web3

from defiagent.devchain import artifacts
from defiagent.devchain.deploy import UniswapV2Deployment
from defiagent.execution.models import ExpectedDelta, PlannedCall


def calldata(signature: str, types: list[str], args: list) -> str:
    return "0x" + (selector(signature) + encode(types, args)).hex()


def approve_call(token: str, spender: str, amount: int, sender: str, intent_id: str = "i-approve"):
    return PlannedCall(
        intent_id=intent_id,
        intent_kind="approve",
        target=token,
        data=calldata("approve(address,uint256)", ["address", "uint256"], [spender, amount]),
        sender=sender,
        allowed_approvals={f"{token}:{spender}": amount},
        description=f"approve {amount} to {spender}",
    )


def swap_call(
    d: UniswapV2Deployment,
    token_in: str,
    token_out: str,
    amount_in: int,
    min_out: int,
    sender: str,
    *,
    recipient: str | None = None,
    intent_id: str = "i-swap",
    expected: list[ExpectedDelta] | None = None,
) -> PlannedCall:
    data = calldata(
        "swapExactTokensForTokens(uint256,uint256,address[],address,uint256)",
        ["uint256", "uint256", "address[]", "address", "uint256"],
        [amount_in, min_out, [token_in, token_out], recipient or sender, int(time.time()) + 3600],
    )
    if expected is None:
        expected = [
            ExpectedDelta(token=token_in, min_delta=-amount_in),
            ExpectedDelta(token=token_out, min_delta=min_out),
        ]
    return PlannedCall(
        intent_id=intent_id,
        intent_kind="swap-exact-in",
        target=d.router,
        data=data,
        sender=sender,
        expected=expected,
        description=f"swap {amount_in} for at least {min_out}",
    )


def fund(w3: Web3, d: UniswapV2Deployment, to: str, *, eth: int = 10**19, token_a: int = 0):
    """Give an agent address ETH and token_a from the deployer (an unlocked dev account)."""
    w3.eth.wait_for_transaction_receipt(
        w3.eth.send_transaction({"from": d.deployer, "to": to, "value": eth})
    )
    if token_a:
        erc20 = w3.eth.contract(address=d.token_a, abi=artifacts.demo_token().abi)
        w3.eth.wait_for_transaction_receipt(
            erc20.functions.transfer(to, token_a).transact({"from": d.deployer})
        )


def approve_on_chain(w3: Web3, token: str, spender: str, amount: int, owner: str) -> None:
    erc20 = w3.eth.contract(address=token, abi=artifacts.demo_token().abi)
    w3.eth.wait_for_transaction_receipt(
        erc20.functions.approve(spender, amount).transact({"from": owner})
    )
