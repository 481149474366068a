"""`python -m defiagent.vetting.slither_cli [--with-defiagent-detectors] <slither args...>`

Slither's own CLI, run in a child process (a crash or a memory spike in the analysis never
takes the agent or the CLI down), with two additions:
  * `--with-defiagent-detectors` adds defiagent's own detectors beside Slither's;
  * DEFIAGENT_SLITHER_ONLY (path-separated names) limits the analysis to chosen files.
    crytic-compile's --solc-standard-json mode compiles every `*.sol` at the top of the
    target folder, and sends a lone file through --combined-json, which solcjs does not
    have; narrowing that one glob analyses a single file from its real folder (so its
    imports resolve there), or a tree whose files sit in subfolders;
  * DEFIAGENT_SOLC_OUTPUT (a file of solc standard-JSON output) hands crytic-compile the
    output vetting already compiled, with DEFIAGENT_SOLC_VERSION its compiler: solc is
    not run again (a first vet costs one compile, not two). With
    DEFIAGENT_SOLC_OUTPUT_WAIT set, Slither loads while the parent is still compiling,
    and starts once the output file appears.
"""

from __future__ import annotations

import glob
import json
import os
import sys
import time

WITH_DETECTORS = "--with-defiagent-detectors"


def _narrow_glob(only: list[str]):
    real_glob = glob.glob

    def narrowed(pattern, *args, **kwargs):
        if pattern.endswith("*.sol"):
            folder = os.path.dirname(pattern)
            return [os.path.join(folder, name) for name in only]
        return real_glob(pattern, *args, **kwargs)

    return narrowed


def _reuse_output(path: str, version: str) -> None:
    import crytic_compile.platform.solc_standard_json as standard_json

    def stored_output(*_args, **_kwargs) -> dict:
        with open(path, encoding="utf-8") as f:
            return json.load(f)

    # compile() looks both names up in its module at call time.
    standard_json.run_solc_standard_json = stored_output
    standard_json.get_version = lambda *_args, **_kwargs: version


def _await(path: str, limit: float = 900) -> None:
    """Load Slither first, then wait for the parent to finish compiling `path` (it writes
    the file whole, by rename); the parent kills this process if the compile fails."""
    import crytic_compile.crytic_compile  # noqa: F401  the heavy imports, done meanwhile
    import slither.__main__  # noqa: F401

    deadline = time.monotonic() + limit
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            sys.exit(f"no compiler output at {path} after {limit:.0f}s")
        time.sleep(0.02)


def main() -> None:
    output = os.environ.get("DEFIAGENT_SOLC_OUTPUT")
    if output:
        if os.environ.get("DEFIAGENT_SOLC_OUTPUT_WAIT"):
            _await(output)
        _reuse_output(output, os.environ["DEFIAGENT_SOLC_VERSION"])
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
