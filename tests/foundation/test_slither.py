"""Slither runs through the project's toolchain on a multi-file project and a single file."""

from __future__ import annotations

import pytest

from defiagent.errors import ConfigError
from defiagent.toolchain import node_modules
from defiagent.vetting.slither_runner import run_slither

pytestmark = pytest.mark.slow


def _checks(result) -> set[str]:
    return {d["check"] for d in result["results"]["detectors"]}


def test_uniswap_v2_core_multi_file_with_imports():
    result = run_slither(node_modules() / "@uniswap/v2-core/contracts")
    assert result["solc_version"] == "0.5.16"
    # Known findings on real Uniswap V2 core (see TOOLCHAIN.md): analysis really ran.
    assert {"weak-prng", "incorrect-equality", "reentrancy-no-eth"} <= _checks(result)
    analysed = {d["first_markdown_element"].split("#")[0] for d in result["results"]["detectors"]}
    assert any("UniswapV2Pair.sol" in a for a in analysed)


def test_single_file_with_a_relative_import(tmp_path):
    (tmp_path / "Owned.sol").write_text(
        "pragma solidity ^0.8.0;\ncontract Owned { address public owner; }\n"
    )
    target = tmp_path / "Killable.sol"
    target.write_text(
        'pragma solidity ^0.8.0;\nimport "./Owned.sol";\n'
        "contract Killable is Owned {\n"
        "  function kill() external { selfdestruct(payable(msg.sender)); }\n}\n"
    )
    result = run_slither(target)
    assert "suicidal" in _checks(result)
    assert not (tmp_path / "crytic-export").exists()


def test_source_that_does_not_compile_is_a_config_error(tmp_path):
    target = tmp_path / "Broken.sol"
    target.write_text("pragma solidity ^0.8.0;\ncontract Broken {\n")
    with pytest.raises(ConfigError):
        run_slither(target)
