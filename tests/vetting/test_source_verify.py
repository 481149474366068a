"""Source verification against the real npm artifacts (the bytes the devchain deploys).

Findings, as measured here: Uniswap V2 pair: full match (the artifact's metadata gives the
exact settings and unit names). Factory: partial (it embeds the pair's creation code, so
its metadata hash moves with the unit names). Router02: partial, and only when
@uniswap/lib resolves to the 1.1.1 copy nested in v2-periphery (the top-level 4.x gives
other bytecode). DemoToken (OpenZeppelin ERC-20): full. WETH9 (canonical-weth): built with
solc 0.5.0, which the toolchain lacks; with 0.5.16 the code differs.
"""

from __future__ import annotations

import json

import pytest

from defiagent.devchain import artifacts
from defiagent.toolchain import node_modules, solc_versions
from defiagent.vetting.bundle import CompilerSettings
from defiagent.vetting.source_verify import verify_source
from tests.allowlist.support import uniswap_bundle

pytestmark = pytest.mark.slow


def _runtime(artifact) -> bytes:
    return bytes.fromhex(artifact.deployed_bytecode.removeprefix("0x"))


def test_pair_full_match_from_its_metadata():
    match, compilation = verify_source(
        uniswap_bundle("pair"), _runtime(artifacts.uniswap_v2_pair())
    )
    assert match.level == "full", match.reason
    assert match.contract == "contracts/UniswapV2Pair.sol:UniswapV2Pair"
    assert match.solc_version == "0.5.16"
    assert compilation.get(match.contract).abi


def test_factory_partial_match_despite_embedded_child_metadata():
    match, _ = verify_source(uniswap_bundle("factory"), _runtime(artifacts.uniswap_v2_factory()))
    assert match.level == "partial", match.reason
    assert match.contract.endswith(":UniswapV2Factory")


def test_router_partial_match_needs_its_own_nested_library():
    bundle = uniswap_bundle("router")
    deployed = _runtime(artifacts.uniswap_v2_router02())
    match, _ = verify_source(bundle, deployed)
    assert match.level == "partial", match.reason
    # The same sources against the top-level @uniswap/lib (4.x): other code, and it says so.
    unit = "@uniswap/lib/contracts/libraries/TransferHelper.sol"
    top = (node_modules() / unit).read_text()
    assert top != bundle.sources[unit]
    wrong = bundle.model_copy(update={"sources": {**bundle.sources, unit: top}})
    mismatch, _ = verify_source(wrong, deployed)
    assert mismatch.level == "mismatch"
    assert "compiles to the deployed runtime code" in mismatch.reason


def test_router_without_the_right_settings_is_a_mismatch():
    bundle = uniswap_bundle("router").with_settings(CompilerSettings())  # our defaults: 200 runs
    match, _ = verify_source(bundle, _runtime(artifacts.uniswap_v2_router02()))
    assert match.level == "mismatch"
    assert "200 runs" in match.reason
    assert "no optimizer" in match.reason


def test_openzeppelin_token_full_match():
    match, _ = verify_source(uniswap_bundle("token"), _runtime(artifacts.demo_token()))
    assert match.level == "full", match.reason


def test_changed_code_is_a_mismatch_and_a_changed_comment_only_partial():
    bundle = uniswap_bundle("token")
    deployed = _runtime(artifacts.demo_token())
    unit = bundle.roots[0]
    commented = bundle.model_copy(
        update={"sources": {**bundle.sources, unit: bundle.sources[unit] + "\n// reviewed\n"}}
    )
    assert verify_source(commented, deployed)[0].level == "partial"
    erc20 = "@openzeppelin/contracts/token/ERC20/ERC20.sol"
    evil = bundle.sources[erc20].replace(
        "function decimals() public view virtual returns (uint8) {\n        return 18;",
        "function decimals() public view virtual returns (uint8) {\n        return 6;",
    )
    assert evil != bundle.sources[erc20]
    backdoored = bundle.model_copy(update={"sources": {**bundle.sources, erc20: evil}})
    assert verify_source(backdoored, deployed)[0].level == "mismatch"


def test_weth9_needs_the_compiler_it_was_built_with():
    deployed = _runtime(artifacts.weth9())
    pinned = uniswap_bundle("weth").with_settings(
        CompilerSettings(version="0.5.0", optimizer_enabled=False, explicit=True)
    )
    match, _ = verify_source(pinned, deployed)
    if "0.5.0" in solc_versions():
        assert match.level == "partial", match.reason  # truffle's absolute unit names differ
    else:
        assert match.level == "unverified"
        assert "solc 0.5.0" in match.reason
        assert "not installed" in match.reason
        newest, _ = verify_source(uniswap_bundle("weth"), deployed)
        assert newest.level == "mismatch"


def test_sourcify_shaped_metadata_string_is_accepted():
    artifact = json.loads(
        (node_modules() / "@uniswap/v2-core/build/UniswapV2Pair.json").read_text()
    )
    from defiagent.vetting.sourcify import bundle_from_sourcify

    meta = json.loads(artifact["metadata"])
    sources = {
        u: {"content": (node_modules() / "@uniswap/v2-core" / u).read_text()}
        for u in meta["sources"]
    }
    bundle = bundle_from_sourcify(
        {"match": "exact_match", "sources": sources, "metadata": artifact["metadata"]}
    )
    assert verify_source(bundle, _runtime(artifacts.uniswap_v2_pair()))[0].level == "full"
