"""Safe 1.4.1 contracts from `@safe-global/safe-contracts` (npm) and the project's guard."""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path

from eth_utils import keccak

from defiagent.cache import cache_dir
from defiagent.devchain.artifacts import Artifact, _from_npm
from defiagent.vetting.solc import compile_standard_json, select_version, standard_input

PACKAGE = "@safe-global/safe-contracts"
_BUILD = "build/artifacts/contracts"
GUARD_SOURCE = Path(__file__).parent / "sol" / "AllowlistGuard.sol"


@cache
def safe_singleton() -> Artifact:
    return _from_npm(PACKAGE, f"{_BUILD}/Safe.sol/Safe.json", "Safe")


@cache
def proxy_factory() -> Artifact:
    return _from_npm(
        PACKAGE, f"{_BUILD}/proxies/SafeProxyFactory.sol/SafeProxyFactory.json", "SafeProxyFactory"
    )


@cache
def safe_proxy() -> Artifact:
    return _from_npm(PACKAGE, f"{_BUILD}/proxies/SafeProxy.sol/SafeProxy.json", "SafeProxy")


@cache
def multi_send_call_only() -> Artifact:
    return _from_npm(
        PACKAGE,
        f"{_BUILD}/libraries/MultiSendCallOnly.sol/MultiSendCallOnly.json",
        "MultiSendCallOnly",
    )


@cache
def fallback_handler() -> Artifact:
    return _from_npm(
        PACKAGE,
        f"{_BUILD}/handler/CompatibilityFallbackHandler.sol/CompatibilityFallbackHandler.json",
        "CompatibilityFallbackHandler",
    )


class GuardArtifact(Artifact):
    # byte ranges (start, length) of the runtime code that hold the immutable `safe`
    immutable_ranges: list[tuple[int, int]] = []

    def runtime_for(self, safe: str) -> bytes:
        """The runtime code a deployment for `safe` has: the immutables filled in."""
        assert self.deployed_bytecode is not None
        code = bytearray(bytes.fromhex(self.deployed_bytecode[2:]))
        word = bytes(12) + bytes.fromhex(safe[2:])
        for start, length in self.immutable_ranges:
            code[start : start + length] = word[32 - length :]
        return bytes(code)


@cache
def guard() -> GuardArtifact:
    """AllowlistGuard compiled with the project's solcjs, cached by source hash."""
    text = GUARD_SOURCE.read_text()
    version = select_version([GUARD_SOURCE])
    key = hashlib.sha256(f"{version}\0{text}".encode()).hexdigest()[:24]
    cached = cache_dir("artifacts") / f"AllowlistGuard-{key}.json"
    if cached.exists():
        return GuardArtifact.model_validate_json(cached.read_text())
    unit = GUARD_SOURCE.name
    output = compile_standard_json(standard_input({unit: text}), version=version)
    compiled = output["contracts"][unit]["AllowlistGuard"]
    deployed = compiled["evm"]["deployedBytecode"]
    refs = deployed.get("immutableReferences") or {}
    ranges = [(r["start"], r["length"]) for spans in refs.values() for r in spans]
    artifact = GuardArtifact(
        name="AllowlistGuard",
        abi=compiled["abi"],
        bytecode="0x" + compiled["evm"]["bytecode"]["object"],
        deployed_bytecode="0x" + deployed["object"],
        source=f"solc {version}: defiagent/safe/sol/{unit}",
        immutable_ranges=ranges,
    )
    tmp = cached.with_suffix(".tmp")
    tmp.write_text(artifact.model_dump_json())
    tmp.replace(cached)
    return artifact


def runtime_codehash(artifact: Artifact) -> str:
    assert artifact.deployed_bytecode is not None
    return "0x" + keccak(hexstr=artifact.deployed_bytecode).hex()


def abi_of(artifact: Artifact) -> list[dict[str, object]]:
    return json.loads(json.dumps(artifact.abi))
