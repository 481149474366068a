"""The real Uniswap V3 bytecode: hardhat artifacts of @uniswap/v3-core 1.0.1 and
@uniswap/v3-periphery 1.4.4 from npm (scripts/toolchain)."""

from __future__ import annotations

from functools import cache

from defiagent.devchain.artifacts import Artifact, _from_npm

CORE = "@uniswap/v3-core"
PERIPHERY = "@uniswap/v3-periphery"


@cache
def factory() -> Artifact:
    return _from_npm(
        CORE, "artifacts/contracts/UniswapV3Factory.sol/UniswapV3Factory.json", "UniswapV3Factory"
    )


@cache
def pool() -> Artifact:
    return _from_npm(
        CORE, "artifacts/contracts/UniswapV3Pool.sol/UniswapV3Pool.json", "UniswapV3Pool"
    )


@cache
def swap_router() -> Artifact:
    return _from_npm(PERIPHERY, "artifacts/contracts/SwapRouter.sol/SwapRouter.json", "SwapRouter")


@cache
def quoter_v2() -> Artifact:
    return _from_npm(PERIPHERY, "artifacts/contracts/lens/QuoterV2.sol/QuoterV2.json", "QuoterV2")


@cache
def position_manager() -> Artifact:
    return _from_npm(
        PERIPHERY,
        "artifacts/contracts/NonfungiblePositionManager.sol/NonfungiblePositionManager.json",
        "NonfungiblePositionManager",
    )
