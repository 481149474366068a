"""Slither's own CLI, limited to chosen files of a folder.

crytic-compile's --solc-standard-json mode compiles every `*.sol` at the top of the target
folder, and sends a lone file through --combined-json, which solcjs does not have. To analyse
one file (with its imports resolved from its real folder) this driver narrows that one glob
to the files named in DEFIAGENT_SLITHER_ONLY, then hands over to Slither's main().
Usage: python -m defiagent.vetting.slither_cli <slither args...>
"""

from __future__ import annotations

import glob
import os
import sys


def _narrow_glob(only: list[str]):
    real_glob = glob.glob

    def narrowed(pattern, *args, **kwargs):
        if pattern.endswith("*.sol"):
            folder = os.path.dirname(pattern)
            return [os.path.join(folder, name) for name in only]
        return real_glob(pattern, *args, **kwargs)

    return narrowed


def main() -> None:
    only = [n for n in os.environ.get("DEFIAGENT_SLITHER_ONLY", "").split(os.pathsep) if n]
    if only:
        import crytic_compile.crytic_compile as cc

        cc.glob.glob = _narrow_glob(only)  # the module's own reference to glob
    from slither.__main__ import main as slither_main

    sys.argv[0] = "slither"
    slither_main()


if __name__ == "__main__":
    main()
