"""`python -m defiagent.vetting.slither_cli [--with-defiagent-detectors] <slither args...>`

Slither's own CLI, run in a child process (a crash or a memory spike in the analysis never
takes the agent or the CLI down), with two additions:
  * `--with-defiagent-detectors` adds defiagent's own detectors beside Slither's;
  * DEFIAGENT_SLITHER_ONLY (path-separated names) limits the analysis to chosen files.
    crytic-compile's --solc-standard-json mode compiles every `*.sol` at the top of the
    target folder, and sends a lone file through --combined-json, which solcjs does not
    have; narrowing that one glob analyses a single file from its real folder (so its
    imports resolve there), or a tree whose files sit in subfolders.
"""

from __future__ import annotations

import glob
import os
import sys

WITH_DETECTORS = "--with-defiagent-detectors"


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
    custom = WITH_DETECTORS in sys.argv
    sys.argv = ["slither", *(a for a in sys.argv[1:] if a != WITH_DETECTORS)]
    if custom:
        from slither.__main__ import get_detectors_and_printers, main_impl

        from defiagent.vetting.detectors import CUSTOM_DETECTORS

        detectors, printers = get_detectors_and_printers()
        main_impl(
            all_detector_classes=[*detectors, *CUSTOM_DETECTORS], all_printer_classes=printers
        )
    else:
        from slither.__main__ import main as slither_main

        slither_main()


if __name__ == "__main__":
    main()
