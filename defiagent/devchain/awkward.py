"""Awkward tokens on a local chain, each with a Uniswap V2 pool: a USDT-style token (approve
from one non-zero allowance to another reverts) and a fee-on-transfer token.

Both are compiled here by solcjs from defiagent/devchain/sol/ (OpenZeppelin 5 from npm) and
deployed with anvil's unlocked dev accounts, like the rest of the devnet.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from web3 import Web3

from defiagent.devchain import artifacts
from defiagent.devchain.deploy import (
    UniswapV2Deployment,
    _wait,
    add_liquidity,
    contract,
    deploy,
)
from defiagent.types import Address


class AwkwardTokens(BaseModel):
    model_config = ConfigDict(frozen=True)

    reset_approve: Address  # USDT style: the allowance must go through 0
    fee_on_transfer: Address  # keeps `fee_bps` of every transfer between holders
    fee_bps: int
    quote: Address  # the token both pools are paired with
    reset_approve_pair: Address
    fee_on_transfer_pair: Address


def deploy_awkward_tokens(
    w3: Web3,
    d: UniswapV2Deployment,
    *,
    quote: str | None = None,
    fee_bps: int = 100,
    supply: int = 10**27,
    depth: tuple[int, int] = (10**24, 10**24),
) -> AwkwardTokens:
    """Deploy both tokens and pool each against `quote` (token_a by default).

    The deployer is the fee token's owner and fee collector, whose own transfers are not
    charged, so the pool is seeded with exactly `depth`.
    """
    sender = d.deployer
    quote = Web3.to_checksum_address(quote or d.token_a)
    reset = deploy(
        w3, artifacts.reset_approve_token(), "Tether-like USD", "RUSD", supply, sender=sender
    )
    fee = deploy(
        w3,
        artifacts.fee_on_transfer_token(),
        "Fee Token",
        "FEE",
        supply,
        fee_bps,
        sender=sender,
    )
    token_depth, quote_depth = depth
    reset_pair = add_liquidity(w3, d, reset.address, quote, token_depth, quote_depth)
    fee_pair = add_liquidity(w3, d, fee.address, quote, token_depth, quote_depth)
    return AwkwardTokens(
        reset_approve=reset.address,
        fee_on_transfer=fee.address,
        fee_bps=fee_bps,
        quote=quote,
        reset_approve_pair=reset_pair,
        fee_on_transfer_pair=fee_pair,
    )


def set_transfer_fee(w3: Web3, token: str, fee_bps: int, *, sender: str) -> None:
    """The fee token's owner changes its fee (what a rug does between review and trade)."""
    fee = contract(w3, artifacts.fee_on_transfer_token(), token)
    _wait(w3, fee.functions.setFee(fee_bps).transact({"from": Web3.to_checksum_address(sender)}))


def fund(w3: Web3, token: str, to: str, amount: int, *, sender: str) -> None:
    """Send `amount` of an awkward token from the deployer (no fee: it is the collector)."""
    erc20 = contract(w3, artifacts.demo_token(), token)
    _wait(w3, erc20.functions.transfer(to, amount).transact({"from": sender}))
