"""The local stand-in for mainnet: real Uniswap V2 bytecode that really trades."""

from __future__ import annotations

from web3 import Web3

from defiagent.devchain import artifacts
from defiagent.devchain.deploy import contract, swap_exact_in


def test_real_artifacts_are_deployed_byte_for_byte(w3, uniswap):
    deployed = w3.eth.get_code(uniswap.weth)
    assert "0x" + deployed.hex().removeprefix("0x") == artifacts.weth9().deployed_bytecode
    # The router computes pair addresses from the pair's init-code hash: the npm Router02
    # and the npm Pair must agree, or every swap would go to an empty address.
    factory = contract(w3, artifacts.uniswap_v2_factory(), uniswap.factory)
    assert factory.functions.getPair(uniswap.token_a, uniswap.token_b).call() == uniswap.pair
    init_hash = Web3.keccak(hexstr=artifacts.uniswap_v2_pair().bytecode).hex().removeprefix("0x")
    assert init_hash in artifacts.uniswap_v2_router02().bytecode


def test_swap_figures_are_the_pools_own(w3, uniswap):
    pair = contract(w3, artifacts.uniswap_v2_pair(), uniswap.pair)
    before = pair.functions.getReserves().call()[:2]
    swap = swap_exact_in(w3, uniswap, uniswap.token_a, uniswap.token_b, 10**21)
    after = pair.functions.getReserves().call()[:2]
    a_is_0 = int(uniswap.token_a, 16) < int(uniswap.token_b, 16)
    i_in, i_out = (0, 1) if a_is_0 else (1, 0)
    assert after[i_in] - before[i_in] == swap.amount_in
    assert before[i_out] - after[i_out] == swap.amount_out
    # Uniswap V2's constant product with its 0.3% fee, computed independently.
    expected = (swap.amount_in * 997 * before[i_out]) // (
        before[i_in] * 1000 + swap.amount_in * 997
    )
    assert swap.amount_out == expected
    balance = contract(w3, artifacts.demo_token(), uniswap.token_b).functions.balanceOf
    assert balance(uniswap.deployer).call() > 0
