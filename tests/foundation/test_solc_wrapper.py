"""The solc-compatible wrapper over solcjs: versions, pragma selection, imports."""

from __future__ import annotations

import json
import subprocess

import pytest

from defiagent.errors import ConfigError
from defiagent.toolchain import node_modules, solc_wrapper_path
from defiagent.vetting.solc import (
    CompileError,
    compile_standard_json,
    select_version,
    solc_env,
    standard_input,
)


@pytest.mark.parametrize("version", ["0.5.16", "0.6.6", "0.8.37"])
def test_version_answers_like_native_solc(version):
    out = subprocess.run(
        [str(solc_wrapper_path()), "--version"],
        env=solc_env(version),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"Version: {version}+commit." in out


@pytest.mark.parametrize(
    ("package", "expected"),
    [
        ("@uniswap/v2-core/contracts", "0.5.16"),
        ("@uniswap/v2-periphery/contracts", "0.6.6"),
        ("@openzeppelin/contracts/token/ERC20", "0.8.37"),
    ],
)
def test_version_is_chosen_from_the_pragmas(package, expected):
    files = sorted((node_modules() / package).glob("*.sol"))
    assert files
    assert select_version(files) == expected


def test_unsatisfiable_pragma_is_a_clear_error(tmp_path):
    src = tmp_path / "Old.sol"
    # Any published release is installed on demand (tests/vetting/test_compilers_*), so
    # only a range no release meets is unsatisfiable.
    src.write_text("pragma solidity ^0.99.0;\ncontract Old {}\n")
    with pytest.raises(ConfigError, match=r"no published solc satisfies"):
        select_version([src])


def test_commented_out_pragma_does_not_count(tmp_path):
    src = tmp_path / "A.sol"
    src.write_text("// pragma solidity 0.4.11;\npragma solidity ^0.6.0;\ncontract A {}\n")
    assert select_version([src]) == "0.6.6"


def test_standard_json_resolves_node_module_and_relative_imports(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "Base.sol").write_text(
        "// SPDX-License-Identifier: MIT\npragma solidity ^0.8.20;\n"
        'import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";\n'
        "abstract contract Base is ERC20 {}\n"
    )
    source = (
        "// SPDX-License-Identifier: MIT\npragma solidity ^0.8.20;\n"
        'import {Base} from "./lib/Base.sol";\n'
        'import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";\n'
        'contract T is Base { constructor() ERC20("T", "T") { _mint(msg.sender, 1); } }\n'
    )
    out = compile_standard_json(standard_input({"T.sol": source}), cwd=tmp_path)
    code = out["contracts"]["T.sol"]["T"]["evm"]["deployedBytecode"]["object"]
    assert len(code) > 1000
    assert "lib/Base.sol" in out["sources"]


def test_sources_given_by_url_are_read_from_disk(tmp_path):
    (tmp_path / "A.sol").write_text("pragma solidity ^0.5.0;\ncontract A { uint x; }\n")
    std = {
        "language": "Solidity",
        "sources": {"A.sol": {"urls": ["A.sol"]}},
        "settings": {"outputSelection": {"*": {"*": ["abi"]}}},
    }
    proc = subprocess.run(
        [str(solc_wrapper_path()), "--standard-json", "--allow-paths", str(tmp_path)],
        input=json.dumps(std),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=solc_env(),
        check=True,
    )
    out = json.loads(proc.stdout)
    assert "A" in out["contracts"]["A.sol"]
    assert out.get("errors", []) == [] or all(e["severity"] != "error" for e in out["errors"])


def test_compile_errors_are_reported_not_swallowed():
    with pytest.raises(CompileError, match="compilation failed"):
        compile_standard_json(standard_input({"B.sol": "pragma solidity ^0.8.0; contract B {"}))


def test_large_output_is_not_truncated():
    # Router02 compiles to far more than 64 KiB of JSON: a truncated pipe would not parse.
    periphery = node_modules() / "@uniswap/v2-periphery/contracts"
    source = (periphery / "UniswapV2Router02.sol").read_text()
    out = compile_standard_json(
        standard_input({"contracts/UniswapV2Router02.sol": source}, optimizer_runs=999999),
        cwd=periphery.parent,
    )
    assert out["contracts"]["contracts/UniswapV2Router02.sol"]["UniswapV2Router02"]["abi"]
