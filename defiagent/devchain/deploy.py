"""Deploy the real Uniswap V2 stack on a local chain, create a pool, add liquidity, swap.

Deployment uses anvil's unlocked dev accounts (eth_sendTransaction): no key is handled.
"""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict
from web3 import Web3
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from defiagent.devchain import artifacts
from defiagent.devchain.artifacts import Artifact
from defiagent.errors import InfraError
from defiagent.types import Address

MAX_UINT = 2**256 - 1


class UniswapV2Deployment(BaseModel):
    model_config = ConfigDict(frozen=True)

    chain_id: int
    deployer: Address
    factory: Address
    router: Address
    weth: Address
    token_a: Address
    token_b: Address
    pair: Address | None = None  # token_a/token_b pool once created


class SwapResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    tx_hash: str
    token_in: Address
    token_out: Address
    amount_in: int
    amount_out: int
    gas_used: int


def _wait(w3: Web3, tx_hash) -> TxReceipt:
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
    if receipt["status"] != 1:
        raise InfraError(f"transaction {tx_hash.hex()} reverted on the local chain")
    return receipt


def deploy(w3: Web3, artifact: Artifact, *args, sender: str) -> Contract:
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    receipt = _wait(w3, factory.constructor(*args).transact({"from": sender}))
    address = receipt["contractAddress"]
    assert address is not None  # a deployment's receipt names the new contract
    return w3.eth.contract(address=address, abi=artifact.abi)


def contract(w3: Web3, artifact: Artifact, address: str) -> Contract:
    return w3.eth.contract(address=Web3.to_checksum_address(address), abi=artifact.abi)


def deploy_uniswap_v2(
    w3: Web3,
    *,
    deployer: str | None = None,
    token_supply: int = 10**27,
    token_names: tuple[tuple[str, str], tuple[str, str]] = (
        ("Demo USD", "DUSD"),
        ("Demo Token", "DTKN"),
    ),
) -> UniswapV2Deployment:
    """Factory, WETH9, Router02 and two OpenZeppelin ERC-20s, all from real artifacts."""
    sender = Web3.to_checksum_address(deployer or w3.eth.accounts[0])
    factory = deploy(w3, artifacts.uniswap_v2_factory(), sender, sender=sender)
    weth = deploy(w3, artifacts.weth9(), sender=sender)
    router = deploy(
        w3, artifacts.uniswap_v2_router02(), factory.address, weth.address, sender=sender
    )
    (name_a, sym_a), (name_b, sym_b) = token_names
    token_a = deploy(w3, artifacts.demo_token(), name_a, sym_a, token_supply, sender=sender)
    token_b = deploy(w3, artifacts.demo_token(), name_b, sym_b, token_supply, sender=sender)
    return UniswapV2Deployment(
        chain_id=w3.eth.chain_id,
        deployer=sender,
        factory=factory.address,
        router=router.address,
        weth=weth.address,
        token_a=token_a.address,
        token_b=token_b.address,
    )


def add_liquidity(
    w3: Web3,
    d: UniswapV2Deployment,
    token_x: str,
    token_y: str,
    amount_x: int,
    amount_y: int,
    *,
    sender: str | None = None,
) -> str:
    """Approve the router and add liquidity (creating the pair if needed); returns the pair."""
    sender = Web3.to_checksum_address(sender or d.deployer)
    router = contract(w3, artifacts.uniswap_v2_router02(), d.router)
    for token, amount in ((token_x, amount_x), (token_y, amount_y)):
        erc20 = contract(w3, artifacts.demo_token(), token)
        _wait(w3, erc20.functions.approve(d.router, amount).transact({"from": sender}))
    deadline = int(time.time()) + 3600
    _wait(
        w3,
        router.functions.addLiquidity(
            token_x, token_y, amount_x, amount_y, 0, 0, sender, deadline
        ).transact({"from": sender}),
    )
    factory = contract(w3, artifacts.uniswap_v2_factory(), d.factory)
    return factory.functions.getPair(token_x, token_y).call()


def create_pool(
    w3: Web3, d: UniswapV2Deployment, amount_a: int, amount_b: int
) -> UniswapV2Deployment:
    pair = add_liquidity(w3, d, d.token_a, d.token_b, amount_a, amount_b)
    return d.model_copy(update={"pair": pair})


def swap_exact_in(
    w3: Web3,
    d: UniswapV2Deployment,
    token_in: str,
    token_out: str,
    amount_in: int,
    *,
    sender: str | None = None,
) -> SwapResult:
    """One swap through the router; amounts are read back from the pair's Swap event."""
    sender = Web3.to_checksum_address(sender or d.deployer)
    router = contract(w3, artifacts.uniswap_v2_router02(), d.router)
    erc20 = contract(w3, artifacts.demo_token(), token_in)
    _wait(w3, erc20.functions.approve(d.router, amount_in).transact({"from": sender}))
    tx = router.functions.swapExactTokensForTokens(
        amount_in, 0, [token_in, token_out], sender, int(time.time()) + 3600
    ).transact({"from": sender})
    receipt = _wait(w3, tx)
    pair = contract(w3, artifacts.uniswap_v2_pair(), d.pair) if d.pair else None
    amount_out = 0
    if pair is not None:
        for event in pair.events.Swap().process_receipt(receipt, errors=DISCARD):
            args = event["args"]
            amount_out = max(args["amount0Out"], args["amount1Out"])
    return SwapResult(
        tx_hash="0x" + receipt["transactionHash"].hex().removeprefix("0x"),
        token_in=token_in,
        token_out=token_out,
        amount_in=amount_in,
        amount_out=amount_out,
        gas_used=receipt["gasUsed"],
    )
