"""A vault on a devnet: OpenZeppelin's ERC4626 over an existing ERC-20, optionally seeded.

Deployment uses anvil's unlocked dev accounts (eth_sendTransaction): no key is handled.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from web3 import Web3

from defiagent.devchain.artifacts import Artifact
from defiagent.devchain.deploy import contract, deploy
from defiagent.errors import InfraError
from defiagent.protocols.erc4626 import artifacts
from defiagent.types import Address

_ERC20_ABI: list[dict[str, Any]] = [
    {
        "type": "function",
        "name": name,
        "stateMutability": mutability,
        "inputs": [{"name": n, "type": t} for n, t in inputs],
        "outputs": [{"name": "", "type": out}],
    }
    for name, mutability, inputs, out in (
        ("approve", "nonpayable", (("spender", "address"), ("amount", "uint256")), "bool"),
        ("symbol", "view", (), "string"),
        ("balanceOf", "view", (("owner", "address"),), "uint256"),
    )
]


class VaultDeployment(BaseModel):
    """One vault on a devnet: what its allowlist entry and `[protocols.erc4626]` need."""

    model_config = ConfigDict(frozen=True)

    chain_id: int
    deployer: Address
    vault: Address
    asset: Address
    name: str
    symbol: str
    seeded_assets: int = 0  # what the deployer deposited at once (shares outstanding)

    def settings(self) -> dict[str, Any]:
        """Its `[protocols.erc4626]` table (one vault; a devnet with several merges them)."""
        return {"vaults": [{"address": self.vault, "asset": self.asset, "name": self.name}]}


def deploy_vault(
    w3: Web3,
    asset: str,
    *,
    deployer: str | None = None,
    name: str | None = None,
    symbol: str | None = None,
    seed_assets: int = 0,
    artifact: Artifact | None = None,
    seed_if_held: bool = False,
) -> VaultDeployment:
    """Deploy a DemoVault over `asset`; with `seed_assets`, the deployer (who must hold
    them; with `seed_if_held`, only if it does) deposits that much first, so the vault has
    shares outstanding, as a live vault does, and a first depositor's inflation attack
    would cost real money."""
    sender = Web3.to_checksum_address(deployer or w3.eth.accounts[0])
    asset = Web3.to_checksum_address(asset)
    token = w3.eth.contract(address=asset, abi=_ERC20_ABI)
    if name is None or symbol is None:
        asset_symbol = token.functions.symbol().call()
        name = name or f"Demo Vault {asset_symbol}"
        symbol = symbol or f"v{asset_symbol}"
    art = artifact or artifacts.demo_vault()
    vault = deploy(w3, art, asset, name, symbol, sender=sender)
    if seed_assets and seed_if_held and token.functions.balanceOf(sender).call() < seed_assets:
        seed_assets = 0
    if seed_assets:
        _send(w3, token.functions.approve(vault.address, seed_assets), sender)
        _send(w3, vault.functions.deposit(seed_assets, sender), sender)
    return VaultDeployment(
        chain_id=w3.eth.chain_id,
        deployer=sender,
        vault=vault.address,
        asset=asset,
        name=name,
        symbol=symbol,
        seeded_assets=seed_assets,
    )


def _send(w3: Web3, fn: Any, sender: str) -> None:
    receipt = w3.eth.wait_for_transaction_receipt(fn.transact({"from": sender}), timeout=30)
    if receipt["status"] != 1:
        raise InfraError(f"{fn.fn_name} reverted on the local chain while seeding the vault")


def vault_contract(w3: Web3, address: str, artifact: Artifact | None = None) -> Any:
    """A web3 handle on a deployed vault (DemoVault's ABI: the full ERC-4626 interface)."""
    return contract(w3, artifact or artifacts.demo_vault(), address)
