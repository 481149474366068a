"""Real contract artifacts: compiled bytecode from the npm packages, or compiled here by solcjs."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
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
    return compile_contracts([(source_file, contract)])[0]


def compile_contracts(units: Sequence[tuple[Path, str]]) -> list[Artifact]:
    """Compile contracts (file, contract name) in one solcjs run, each cached by its source
    hash: a run of solcjs costs seconds, most of it starting the compiler."""
    texts = {f: f.read_text() for f, _ in units}
    version = select_version(list(texts))
    found: dict[tuple[Path, str], Artifact] = {}
    paths: dict[tuple[Path, str], Path] = {}
    for f, contract in units:
        key = hashlib.sha256(f"{version}\0{contract}\0{texts[f]}".encode()).hexdigest()[:24]
        paths[(f, contract)] = cached = cache_dir("artifacts") / f"{contract}-{key}.json"
        if cached.exists():
            found[(f, contract)] = Artifact.model_validate_json(cached.read_text())
    missing = [u for u in units if u not in found]
    if missing:
        sources = {f.name: texts[f] for f, _ in missing}
        output = compile_standard_json(
            standard_input(sources),
            version=version,
            include=sorted({f.parent for f, _ in missing}),
        )
        for f, contract in missing:
            compiled = output["contracts"][f.name][contract]
            artifact = Artifact(
                name=contract,
                abi=compiled["abi"],
                bytecode=_hex(compiled["evm"]["bytecode"]["object"]),
                deployed_bytecode=_hex(compiled["evm"]["deployedBytecode"]["object"]),
                source=f"solc {version}: {f.name} (OpenZeppelin from npm)",
            )
            cached = paths[(f, contract)]
            tmp = cached.with_suffix(".tmp")
            tmp.write_text(artifact.model_dump_json())
            tmp.replace(cached)
            found[(f, contract)] = artifact
    return [found[u] for u in units]


@cache
def demo_token() -> Artifact:
    return compile_contract(SOL_DIR / "DemoToken.sol", "DemoToken")


@cache
def _awkward_tokens() -> tuple[Artifact, Artifact]:
    reset, fee = compile_contracts(
        [
            (SOL_DIR / "ResetApproveToken.sol", "ResetApproveToken"),
            (SOL_DIR / "FeeOnTransferToken.sol", "FeeOnTransferToken"),
        ]
    )
    return reset, fee


def reset_approve_token() -> Artifact:
    """USDT-style: approve from one non-zero allowance to another reverts."""
    return _awkward_tokens()[0]


def fee_on_transfer_token() -> Artifact:
    """Keeps a fee (set by its owner) on every transfer between holders."""
    return _awkward_tokens()[1]
