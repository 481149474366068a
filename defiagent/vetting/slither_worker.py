"""`python -m defiagent.vetting.slither_worker ARGS`: Slither's own CLI plus our detectors.

Runs in a child process (as Slither itself would), so a crash or a memory spike in the
analysis never takes the agent or the CLI down. Arguments are exactly Slither's.
"""

from __future__ import annotations

import sys


def main() -> None:
    from slither.__main__ import get_detectors_and_printers, main_impl

    from defiagent.vetting.detectors import CUSTOM_DETECTORS

    detectors, printers = get_detectors_and_printers()
    main_impl(all_detector_classes=[*detectors, *CUSTOM_DETECTORS], all_printer_classes=printers)


if __name__ == "__main__":
    sys.argv[0] = "slither"
    main()
