"""Anyone can overwrite a variable that other code uses to check who the caller is."""

from __future__ import annotations

from slither.analyses.data_dependency.data_dependency import is_dependent
from slither.core.declarations import Contract, Function
from slither.core.declarations.solidity_variables import SolidityVariableComposed
from slither.core.solidity_types import ElementaryType, MappingType
from slither.core.variables.state_variable import StateVariable
from slither.detectors.abstract_detector import AbstractDetector, DetectorClassification
from slither.slithir.operations import Binary, BinaryType, Index

_SENDER = SolidityVariableComposed("msg.sender")
_ORIGIN = SolidityVariableComposed("tx.origin")
_ONE_SHOT = {"initializer", "reinitializer", "onlyInitializing"}


class UnprotectedAuthWrite(AbstractDetector):
    ARGUMENT = "unprotected-auth-write"
    HELP = "Anyone can change a variable that guards access (owner, admin, minter list...)"
    IMPACT = DetectorClassification.HIGH
    CONFIDENCE = DetectorClassification.MEDIUM

    WIKI = "https://github.com/defiagent/defiagent/blob/main/docs/allowlist.md#detectors"
    WIKI_TITLE = "Unprotected write to an access-control variable"
    WIKI_DESCRIPTION = (
        "A state variable is compared with `msg.sender` (or `tx.origin`) to authorise callers, "
        "and a public function with no caller check of its own writes that variable."
    )
    WIKI_EXPLOIT_SCENARIO = """
```solidity
contract Vault {
    address public owner;
    function setOwner(address o) external { owner = o; }
    function sweep(address to) external { require(msg.sender == owner); ... }
}
```
Eve calls `setOwner(eve)`, then `sweep(eve)`."""
    WIKI_RECOMMENDATION = "Check the caller (e.g. `onlyOwner`) in every function that writes it."

    def _is_caller(self, value, function: Function) -> bool:
        if value in (_SENDER, _ORIGIN):
            return True
        try:
            return is_dependent(value, _SENDER, function) or is_dependent(value, _ORIGIN, function)
        except Exception:  # values Slither has no dependency data for
            return False

    def _auth_variables(self, contract: Contract) -> dict[StateVariable, Function]:
        """State variables used to authorise the caller, with one function that does so."""
        found: dict[StateVariable, Function] = {}
        for function in [*contract.functions, *contract.modifiers]:
            for node in function.nodes:
                if not (node.contains_require_or_assert() or node.contains_if()):
                    continue
                for ir in node.irs:
                    if isinstance(ir, Binary) and ir.type in (
                        BinaryType.EQUAL,
                        BinaryType.NOT_EQUAL,
                    ):
                        pairs = (
                            (ir.variable_left, ir.variable_right),
                            (ir.variable_right, ir.variable_left),
                        )
                        for mine, other in pairs:
                            if isinstance(other, StateVariable) and self._is_caller(mine, function):
                                found.setdefault(other, function)
                    elif (
                        isinstance(ir, Index)
                        and isinstance(ir.variable_left, StateVariable)
                        and isinstance(ir.variable_left.type, MappingType)
                        and ir.variable_left.type.type_to == ElementaryType("bool")
                        and self._is_caller(ir.variable_right, function)
                    ):
                        found.setdefault(ir.variable_left, function)
        return found

    @staticmethod
    def _unprotected_entry(function: Function) -> bool:
        if function.is_constructor or function.visibility not in ("public", "external"):
            return False
        if function.view or function.pure:
            return False
        if _ONE_SHOT & {m.name for m in function.modifiers}:
            return False  # one-time initialisers: a proxy must be initialised when deployed
        if function.is_protected():
            return False
        # tx.origin "protection" is reported by Slither's own tx-origin detector.
        return _ORIGIN not in function.all_conditional_solidity_variables_read(include_loop=False)

    def _detect(self):
        results = []
        for contract in self.compilation_unit.contracts_derived:
            auth = self._auth_variables(contract)
            if not auth:
                continue
            for function in contract.functions:
                if not self._unprotected_entry(function):
                    continue
                for variable in sorted(
                    set(function.all_state_variables_written()) & set(auth), key=lambda v: v.name
                ):
                    info = [
                        function,
                        " lets anyone change ",
                        variable,
                        ", which ",
                        auth[variable],
                        " uses to authorise the caller\n",
                    ]
                    results.append(self.generate_result(info))
        return results
