"""The vault's bytecode: OpenZeppelin 5.7.0's ERC4626 (npm), compiled here by solcjs."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from pydantic import TypeAdapter

from defiagent.cache import cache_dir
from defiagent.devchain.artifacts import Artifact
from defiagent.vetting.solc import compile_standard_json, select_version, standard_input

DEMO_VAULT_SOL = Path(__file__).parent / "sol" / "DemoVault.sol"
_ARTIFACTS = TypeAdapter(dict[str, Artifact])


def compile_units(files: Sequence[Path]) -> dict[str, Artifact]:
    """Every contract of `files` by name, from one solcjs run (imports from node_modules),
    cached by the sources' hash: OpenZeppelin's ERC4626 takes solcjs several seconds, so
    related contracts (a test's vaults beside DemoVault) are compiled together."""
    texts = {f.name: f.read_text() for f in files}
    version = select_version(files)
    digest = hashlib.sha256(version.encode())
    for name, text in sorted(texts.items()):
        digest.update(f"\0{name}\0{text}".encode())
    cached = cache_dir("artifacts") / f"units-{digest.hexdigest()[:24]}.json"
    if cached.exists():
        return _ARTIFACTS.validate_json(cached.read_text())
    output = compile_standard_json(
        standard_input(texts), version=version, include=sorted({f.parent for f in files})
    )
    out: dict[str, Artifact] = {}
    for unit in texts:
        for name, compiled in output["contracts"][unit].items():
            out[name] = Artifact(
                name=name,
                abi=compiled["abi"],
                bytecode="0x" + compiled["evm"]["bytecode"]["object"],
                deployed_bytecode="0x" + compiled["evm"]["deployedBytecode"]["object"],
                source=f"solc {version}: {unit} (OpenZeppelin from npm)",
            )
    tmp = cached.with_suffix(".tmp")
    tmp.write_bytes(_ARTIFACTS.dump_json(out))
    tmp.replace(cached)
    return out


@cache
def demo_vault() -> Artifact:
    return compile_units((DEMO_VAULT_SOL,))["DemoVault"]
