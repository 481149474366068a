"""Where the project's toolchain lives: anvil, cast, the solcjs wrapper, contract artifacts.

The JS toolchain is installed by `scripts/bootstrap` into `scripts/toolchain/node_modules`
from the pinned package-lock.json. DEFIAGENT_TOOLCHAIN_DIR points elsewhere (an installed
package, a CI cache).
"""

from __future__ import annotations

import json
import os
import shutil
from functools import cache
from pathlib import Path

from defiagent.errors import ToolMissing

REMEDY = "run `scripts/bootstrap` (or `make setup`) to install the pinned toolchain"


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def toolchain_dir() -> Path:
    env = os.environ.get("DEFIAGENT_TOOLCHAIN_DIR")
    return Path(env).resolve() if env else repo_root() / "scripts" / "toolchain"


def node_modules() -> Path:
    return toolchain_dir() / "node_modules"


def _foundry_binary(name: str) -> Path:
    # Call the native binary directly, not the npm JS launcher: a node middleman would
    # break the parent-death signal that keeps anvil from outliving its parent.
    path = node_modules() / "@foundry-rs" / f"{name}-linux-amd64" / "bin" / name
    if path.is_file() and os.access(path, os.X_OK):
        return path
    found = shutil.which(name)
    if found:
        return Path(found)
    raise ToolMissing(f"{name} is not installed", remedy=REMEDY)


def anvil_path() -> Path:
    return _foundry_binary("anvil")


def cast_path() -> Path:
    return _foundry_binary("cast")


def solc_wrapper_path() -> Path:
    path = toolchain_dir() / "bin" / "solc"
    if not path.is_file():
        raise ToolMissing("the solcjs wrapper is missing", remedy=REMEDY)
    if not (node_modules() / "solc").is_dir():
        raise ToolMissing("solcjs is not installed", remedy=REMEDY)
    return path


def node_path() -> Path:
    found = shutil.which("node")
    if not found:
        raise ToolMissing("node is not on PATH", remedy="install Node.js 20 or newer")
    return Path(found)


@cache
def solc_versions() -> dict[str, str]:
    """Installed solcjs compilers: version -> npm package folder name."""
    out: dict[str, str] = {}
    root = node_modules()
    if not root.is_dir():
        return out
    for pkg in sorted(root.iterdir()):
        if not (pkg.name == "solc" or pkg.name.startswith("solc-")):
            continue
        meta = pkg / "package.json"
        if not meta.is_file() or not (pkg / "soljson.js").is_file():
            continue
        out[json.loads(meta.read_text())["version"]] = pkg.name
    return out


def artifact_path(package: str, relative: str) -> Path:
    path = node_modules() / package / relative
    if not path.is_file():
        raise ToolMissing(f"contract artifact {package}/{relative} is missing", remedy=REMEDY)
    return path
