"""defiagent's own Slither detectors: one class per file, metadata on the class.

They run inside Slither beside its built-in detectors (see slither_cli), so their
findings carry Slither ids and go through the same gate and triage as Slither's own.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def __getattr__(name: str):
    # CUSTOM_DETECTORS imports Slither (~0.15 s): only the Slither worker and `vet
    # --list-checks` need the classes; the cache key below needs only their source.
    if name == "CUSTOM_DETECTORS":
        from defiagent.vetting.detectors.signature_replay import SignatureReplay
        from defiagent.vetting.detectors.spot_price_oracle import SpotPriceOracle
        from defiagent.vetting.detectors.unchecked_arithmetic import UncheckedArithmetic
        from defiagent.vetting.detectors.unlocked_implementation import UnlockedImplementation
        from defiagent.vetting.detectors.unprotected_auth_write import UnprotectedAuthWrite
        from defiagent.vetting.detectors.unprotected_mint import UnprotectedMint
        from defiagent.vetting.detectors.vault_share_inflation import VaultShareInflation

        return [
            UnprotectedAuthWrite,
            SignatureReplay,
            UnprotectedMint,
            SpotPriceOracle,
            VaultShareInflation,
            UnlockedImplementation,
            UncheckedArithmetic,
        ]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def detectors_digest() -> str:
    """Changes whenever a detector's code changes: part of the Slither cache key."""
    h = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()[:16]
