"""Bytecode comparison and source bundles: pure, no compiler, no chain."""

from __future__ import annotations

import json

import pytest
from eth_utils import keccak

from defiagent.errors import ConfigError
from defiagent.toolchain import node_modules
from defiagent.vetting.bundle import SourceBundle, bundle_from_metadata, bundle_from_path
from defiagent.vetting.bytecode import (
    DELEGATECALL,
    SELFDESTRUCT,
    compare,
    metadata_length,
    opcodes,
    strip_metadata,
)
from defiagent.vetting.compiler import CompiledContract
from defiagent.vetting.proxy import minimal_proxy_target


def _pair_runtime() -> bytes:
    artifact = json.loads(
        (node_modules() / "@uniswap/v2-core/build/UniswapV2Pair.json").read_text()
    )
    return bytes.fromhex(artifact["evm"]["deployedBytecode"]["object"])


def _compiled(code: bytes, **extra) -> CompiledContract:
    return CompiledContract(unit="A.sol", name="A", abi=[], runtime=code.hex(), **extra)


def test_metadata_tail_of_a_real_contract():
    code = _pair_runtime()
    n = metadata_length(code)
    assert n == 0x32 + 2  # solc 0.5.16: bzzr1 hash + solc version
    assert code[-n] == 0xA2
    assert strip_metadata(code) == code[:-n]
    assert metadata_length(b"\x60\x00\x00\x01") == 0  # a length that points at no CBOR map


def test_compare_levels():
    code = _pair_runtime()
    assert compare(code, _compiled(code)) == "full"
    other_meta = code[:-10] + bytes(8) + code[-2:]
    assert compare(other_meta, _compiled(code)) == "partial"
    patched = bytearray(code)
    patched[100] ^= 0xFF
    assert compare(bytes(patched), _compiled(code)) == "mismatch"


def test_immutables_are_ignored_but_nothing_else():
    code = bytes.fromhex("7f" + "00" * 32 + "50" + "60016000f3")
    deployed = bytes.fromhex("7f" + "ab" * 32 + "50" + "60016000f3")
    assert compare(deployed, _compiled(code)) == "mismatch"
    assert compare(deployed, _compiled(code, immutables=[(1, 32)])) == "full"
    tampered = deployed[:-1] + b"\xfe"
    assert compare(tampered, _compiled(code, immutables=[(1, 32)])) == "mismatch"


def test_opcode_scan_skips_push_data():
    # PUSH1 0xff; PUSH2 0xf4f4; STOP: neither SELFDESTRUCT nor DELEGATECALL is an opcode here.
    assert not {SELFDESTRUCT, DELEGATECALL} & opcodes(bytes.fromhex("60ff61f4f400"))
    assert SELFDESTRUCT in opcodes(bytes.fromhex("6000ff"))


def test_minimal_proxy_patterns():
    target = bytes.fromhex("be" * 20)
    eip1167 = (
        bytes.fromhex("363d3d373d3d3d363d73")
        + target
        + bytes.fromhex("5af43d82803e903d91602b57fd5bf3")
    )
    erc7511 = (
        bytes.fromhex("365f5f375f5f365f73")
        + target
        + bytes.fromhex("5af43d5f5f3e5f3d91602a57fd5bf3")
    )
    assert minimal_proxy_target(eip1167).lower() == "0x" + "be" * 20
    assert minimal_proxy_target(erc7511).lower() == "0x" + "be" * 20
    assert minimal_proxy_target(eip1167 + b"\x00") is None


def test_imports_resolve_like_node_nested_node_modules_first():
    router = node_modules() / "@uniswap/v2-periphery/contracts/UniswapV2Router02.sol"
    bundle = bundle_from_path(router)
    helper = bundle.sources["@uniswap/lib/contracts/libraries/TransferHelper.sol"]
    nested = (
        node_modules()
        / "@uniswap/v2-periphery/node_modules/@uniswap/lib/contracts/libraries/TransferHelper.sol"
    )
    assert (
        helper == nested.read_text()
    )  # the 1.1.1 the router was built with, not the top-level 4.x
    assert bundle.roots == ["UniswapV2Router02.sol"]
    assert "libraries/UniswapV2Library.sol" in bundle.sources


def test_relative_import_above_the_file_moves_the_base_up(tmp_path):
    (tmp_path / "Owned.sol").write_text("pragma solidity ^0.8.0;\ncontract Owned {}\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "Main.sol").write_text(
        'pragma solidity ^0.8.0;\nimport "../Owned.sol";\ncontract Main is Owned {}\n'
    )
    bundle = bundle_from_path(tmp_path / "sub" / "Main.sol")
    assert set(bundle.sources) == {"sub/Main.sol", "Owned.sol"}
    assert bundle.roots == ["sub/Main.sol"]


def test_missing_import_is_a_config_error(tmp_path):
    (tmp_path / "A.sol").write_text('pragma solidity ^0.8.0;\nimport "./Nope.sol";\n')
    with pytest.raises(ConfigError, match=r"Nope\.sol"):
        bundle_from_path(tmp_path / "A.sol")


def test_metadata_bundle_checks_every_source_hash(tmp_path):
    text = "pragma solidity ^0.8.0;\ncontract A {}\n"
    meta = {
        "compiler": {"version": "0.8.37+commit.deadbeef"},
        "language": "Solidity",
        "settings": {
            "compilationTarget": {"src/A.sol": "A"},
            "optimizer": {"enabled": True, "runs": 10},
        },
        "sources": {"src/A.sol": {"keccak256": "0x" + keccak(text=text).hex()}},
    }
    (tmp_path / "renamed.sol").write_text(text)  # found by its keccak256, whatever its name
    bundle = bundle_from_metadata(meta, tmp_path)
    assert bundle.target == "src/A.sol:A"
    assert bundle.settings.version == "0.8.37"
    assert bundle.settings.optimizer_runs == 10
    assert bundle.settings.explicit
    (tmp_path / "renamed.sol").write_text(text + "// edited\n")
    with pytest.raises(ConfigError, match="missing"):
        bundle_from_metadata(meta, tmp_path)
    with pytest.raises(ConfigError, match="keccak256"):
        bundle_from_metadata(meta, contents={"src/A.sol": text + " "})


def test_unit_names_that_escape_the_staging_folder_are_refused(tmp_path):
    bundle = SourceBundle(sources={"../../etc/x.sol": "contract X {}"}, roots=["../../etc/x.sol"])
    with pytest.raises(ConfigError, match="cannot be staged"):
        bundle.stage(tmp_path)
