"""Helpers shared by the signing tests: funding, transactions, anvil round trips."""

from __future__ import annotations

from eth_account import Account
from web3 import Web3

from defiagent.signing.kms import RetryPolicy

REGION = "us-east-1"
FAST_RETRY = RetryPolicy(attempts=3, initial_wait=0.01, max_wait=0.02)


def fund(w3: Web3, address: str, wei: int = 10**18) -> None:
    """Send ETH from anvil's unlocked dev account 0."""
    tx_hash = w3.eth.send_transaction({"from": w3.eth.accounts[0], "to": address, "value": wei})
    assert w3.eth.wait_for_transaction_receipt(tx_hash)["status"] == 1


def eip1559_tx(w3: Web3, nonce: int, **extra) -> dict:
    base_fee = w3.eth.get_block("latest")["baseFeePerGas"]
    return {
        "type": 2,
        "chainId": w3.eth.chain_id,
        "nonce": nonce,
        "to": Account.create().address,
        "value": 12345,
        "gas": 21000,
        "maxPriorityFeePerGas": 10**9,
        "maxFeePerGas": 2 * base_fee + 10**9,
        **extra,
    }


def legacy_tx(w3: Web3, nonce: int, **extra) -> dict:
    return {
        "chainId": w3.eth.chain_id,
        "nonce": nonce,
        "to": Account.create().address,
        "value": 6789,
        "gas": 21000,
        "gasPrice": 2 * w3.eth.gas_price,
        **extra,
    }


def send_and_check(w3: Web3, signer, tx: dict) -> dict:
    """Sign, broadcast, and check the chain saw the signer as sender."""
    signed = signer.sign_transaction(tx)
    assert signed.sender == signer.address
    tx_hash = w3.eth.send_raw_transaction(signed.raw)
    assert tx_hash.hex().removeprefix("0x") == signed.hash.removeprefix("0x")
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash)
    assert receipt["status"] == 1
    assert receipt["from"] == signer.address
    assert w3.eth.get_transaction(tx_hash)["to"] == tx["to"]
    return receipt


def run_on_anvil(w3: Web3, signer) -> None:
    """Fund the signer, then send an EIP-1559 and a legacy (EIP-155) transaction."""
    fund(w3, signer.address)
    send_and_check(w3, signer, eip1559_tx(w3, 0))
    send_and_check(w3, signer, legacy_tx(w3, 1))
    assert w3.eth.get_transaction_count(signer.address) == 2


TYPED_DATA = {
    "types": {
        "EIP712Domain": [
            {"name": "name", "type": "string"},
            {"name": "version", "type": "string"},
            {"name": "chainId", "type": "uint256"},
            {"name": "verifyingContract", "type": "address"},
        ],
        "Order": [
            {"name": "maker", "type": "address"},
            {"name": "amount", "type": "uint256"},
            {"name": "memo", "type": "string"},
        ],
    },
    "primaryType": "Order",
    "domain": {
        "name": "defiagent-test",
        "version": "1",
        "chainId": 31337,
        "verifyingContract": "0x000000000000000000000000000000000000dEaD",
    },
    "message": {
        "maker": "0x000000000000000000000000000000000000bEEF",
        "amount": 10**18,
        "memo": "limit order",
    },
}
