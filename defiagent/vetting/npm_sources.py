"""Sources and build settings of the contracts the devchain deploys from npm artifacts.

So the demo (and tests) can vet what they deploy through the real workflow. Each bundle
is what an operator would hand to `vet --sources`: the published sources plus the
settings the package was built with (found in its artifact metadata or its build config).
"""

from __future__ import annotations

import json

from defiagent.errors import ConfigError
from defiagent.toolchain import node_modules, repo_root, solc_versions
from defiagent.vetting.bundle import (
    CompilerSettings,
    SourceBundle,
    bundle_from_metadata,
    bundle_from_path,
)

# Uniswap V2 core and periphery were built with these (their waffle configs).
UNISWAP_V2_SETTINGS = CompilerSettings(optimizer_runs=999999, evm_version="istanbul", explicit=True)

KNOWN = (
    "uniswap-v2-pair",
    "uniswap-v2-factory",
    "uniswap-v2-router02",
    "weth9",
    "demo-token",
    "demo-vault",
)


def npm_sources(name: str) -> SourceBundle:
    """One of KNOWN: the sources that describe the devchain's deployed code."""
    nm = node_modules()
    if name == "uniswap-v2-pair":
        artifact = json.loads((nm / "@uniswap/v2-core/build/UniswapV2Pair.json").read_text())
        return bundle_from_metadata(json.loads(artifact["metadata"]), nm / "@uniswap/v2-core")
    if name == "uniswap-v2-factory":
        return bundle_from_path(
            nm / "@uniswap/v2-core/contracts/UniswapV2Factory.sol", settings=UNISWAP_V2_SETTINGS
        )
    if name == "uniswap-v2-router02":
        settings = UNISWAP_V2_SETTINGS.model_copy(update={"version": "0.6.6"})
        return bundle_from_path(
            nm / "@uniswap/v2-periphery/contracts/UniswapV2Router02.sol", settings=settings
        )
    if name == "weth9":
        # canonical-weth 1.4.0 was built by truffle with solc 0.5.0, optimizer off. Without
        # that compiler the sources still compile (newest matching pragma) for Slither, but
        # they cannot be bound to the deployed code: verification then reports a mismatch.
        version = "0.5.0" if "0.5.0" in solc_versions() else None
        settings = CompilerSettings(version=version, optimizer_enabled=False, explicit=True)
        return bundle_from_path(nm / "canonical-weth/contracts/WETH9.sol", settings=settings)
    if name == "demo-token":
        return bundle_from_path(repo_root() / "defiagent" / "devchain" / "sol" / "DemoToken.sol")
    if name == "demo-vault":  # OpenZeppelin's ERC4626, built by solcjs like DemoToken
        return bundle_from_path(
            repo_root() / "defiagent" / "protocols" / "erc4626" / "sol" / "DemoVault.sol"
        )
    raise ConfigError(f"no known sources for {name!r} (known: {', '.join(KNOWN)})")
