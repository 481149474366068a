"""Real contract artifacts: compiled bytecode from the npm packages, or compiled here by solcjs."""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from defiagent.cache import cache_dir
from defiagent.toolchain import artifact_path
from defiagent.vetting.solc import compile_standard_json, select_version, standard_input

SOL_DIR = Path(__file__).parent / "sol"


class Artifact(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    abi: list
    bytecode: str  # creation code, 0x-prefixed
    deployed_bytecode: str | None = None
    source: str  # where it came from, for reports


def _hex(code: str) -> str:
    return code if code.startswith("0x") else "0x" + code


def _from_npm(package: str, relative: str, name: str) -> Artifact:
    data = json.loads(artifact_path(package, relative).read_text())
    if "evm" in data:  # waffle-style (Uniswap): evm.bytecode.object
        bytecode = data["evm"]["bytecode"]["object"]
        deployed = data["evm"].get("deployedBytecode", {}).get("object")
    else:  # truffle-style (canonical-weth)
        bytecode, deployed = data["bytecode"], data.get("deployedBytecode")
    return Artifact(
        name=name,
        abi=data["abi"],
        bytecode=_hex(bytecode),
        deployed_bytecode=_hex(deployed) if deployed else None,
        source=f"npm:{package}/{relative}",
    )


@cache
def uniswap_v2_factory() -> Artifact:
    return _from_npm("@uniswap/v2-core", "build/UniswapV2Factory.json", "UniswapV2Factory")


@cache
def uniswap_v2_pair() -> Artifact:
    return _from_npm("@uniswap/v2-core", "build/UniswapV2Pair.json", "UniswapV2Pair")


@cache
def uniswap_v2_router02() -> Artifact:
    return _from_npm("@uniswap/v2-periphery", "build/UniswapV2Router02.json", "UniswapV2Router02")


@cache
def weth9() -> Artifact:
    return _from_npm("canonical-weth", "build/contracts/WETH9.json", "WETH9")


def compile_contract(source_file: Path, contract: str) -> Artifact:
    """Compile one contract with solcjs (imports from node_modules), cached by source hash."""
    text = source_file.read_text()
    version = select_version([source_file])
    key = hashlib.sha256(f"{version}\0{contract}\0{text}".encode()).hexdigest()[:24]
    cached = cache_dir("artifacts") / f"{contract}-{key}.json"
    if cached.exists():
        return Artifact.model_validate_json(cached.read_text())
    unit = source_file.name
    output = compile_standard_json(
        standard_input({unit: text}), version=version, include=[source_file.parent]
    )
    compiled = output["contracts"][unit][contract]
    artifact = Artifact(
        name=contract,
        abi=compiled["abi"],
        bytecode=_hex(compiled["evm"]["bytecode"]["object"]),
        deployed_bytecode=_hex(compiled["evm"]["deployedBytecode"]["object"]),
        source=f"solc {version}: {source_file.name} (OpenZeppelin from npm)",
    )
    tmp = cached.with_suffix(".tmp")
    tmp.write_text(artifact.model_dump_json())
    tmp.replace(cached)
    return artifact


@cache
def demo_token() -> Artifact:
    return compile_contract(SOL_DIR / "DemoToken.sol", "DemoToken")
