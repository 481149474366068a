"""An upgradeable implementation whose constructor does not disable its initializers."""

from __future__ import annotations

from slither.core.declarations import Contract, Function
from slither.detectors.abstract_detector import AbstractDetector, DetectorClassification

from defiagent.vetting.detectors._flow import callees

_INITIALIZERS = {"initializer", "reinitializer"}
_LOCK = "_disableInitializers"


def _initializers(contract: Contract) -> list[Function]:
    return [
        f
        for f in contract.functions
        if f.visibility in ("public", "external")
        and not f.is_constructor
        and _INITIALIZERS & {m.name for m in f.modifiers}
    ]


def _locks(constructor: Function | None) -> bool:
    """The constructor calls _disableInitializers, or is itself an initializer (OZ 4)."""
    if constructor is None:
        return False
    if _INITIALIZERS & {m.name for m in constructor.modifiers}:
        return True
    return any(f.name == _LOCK for f in callees(constructor))


class UnlockedImplementation(AbstractDetector):
    ARGUMENT = "unlocked-implementation"
    HELP = (
        "An upgradeable implementation can be initialised by anyone (constructor does not lock it)"
    )
    IMPACT = DetectorClassification.MEDIUM
    CONFIDENCE = DetectorClassification.HIGH

    WIKI = "https://github.com/defiagent/defiagent/blob/main/docs/allowlist.md#detectors"
    WIKI_TITLE = "Implementation left open to initialisation"
    WIKI_DESCRIPTION = (
        "A contract meant to sit behind a proxy has an `initializer` function, but its "
        "constructor does not call `_disableInitializers()`: anyone can initialise the "
        "implementation itself and own it."
    )
    WIKI_EXPLOIT_SCENARIO = """
```solidity
contract Impl is Initializable, UUPSUpgradeable {
    function initialize(address owner_) external initializer { owner = owner_; }
}
```
Eve calls `initialize(eve)` on the implementation, then upgrades it to a contract that
self-destructs, bricking every proxy that points at it."""
    WIKI_RECOMMENDATION = "Add `constructor() { _disableInitializers(); }`."

    def _detect(self):
        results = []
        for contract in self.compilation_unit.contracts_derived:
            if contract.is_interface or contract.is_library or contract.is_abstract:
                continue
            entry = _initializers(contract)
            if not entry or _locks(contract.constructor):
                continue
            info = [
                contract,
                " can be initialised by anyone through ",
                entry[0],
                ": its constructor does not call _disableInitializers()\n",
            ]
            results.append(self.generate_result(info))
        return results
