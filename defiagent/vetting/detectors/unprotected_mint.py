"""Anyone can mint tokens, or burn someone else's: the supply changes with no caller check."""

from __future__ import annotations

from slither.analyses.data_dependency.data_dependency import get_dependencies
from slither.core.declarations import Contract, Function
from slither.core.declarations.solidity_variables import SolidityVariableComposed
from slither.core.variables.state_variable import StateVariable
from slither.detectors.abstract_detector import AbstractDetector, DetectorClassification
from slither.slithir.operations import Binary, BinaryType, LibraryCall

from defiagent.vetting.detectors._flow import (
    callees,
    contract_of,
    entry_points,
    operations,
    origins,
)

_SENDER = SolidityVariableComposed("msg.sender")
_VALUE = SolidityVariableComposed("msg.value")
_ONE_SHOT = {"initializer", "reinitializer", "onlyInitializing"}
_RAW_CALLS = ("call(", "staticcall(", "delegatecall(")


def supply_variables(contract: Contract) -> set[StateVariable]:
    """What `totalSupply` reports: the public variable, or what the function returns."""
    found: set[StateVariable] = set()
    for variable in contract.state_variables:
        if variable.name == "totalSupply" and variable.visibility == "public":
            found.add(variable)
    for function in contract.functions:
        if function.name == "totalSupply" and not function.parameters:
            for ret in [*function.return_values, *function.returns]:
                flow = origins(ret, function, depth=1)
                found |= {v for v in flow.variables if isinstance(v, StateVariable)}
    return found


def _changes(function: Function, supply: set[StateVariable]) -> set[str]:
    """ "mint" and/or "burn": how the function's own body moves a supply variable."""
    kinds: set[str] = set()
    for variable in supply & set(function.state_variables_written):
        feeding = {variable, *get_dependencies(variable, function)}
        for ir in operations(function):
            if isinstance(ir, Binary) and ir.lvalue in feeding:
                if ir.type == BinaryType.ADDITION:
                    kinds.add("mint")
                elif ir.type == BinaryType.SUBTRACTION:
                    kinds.add("burn")
    return kinds


def _paid(function: Function) -> bool:
    """The call brings value in or talks to another contract (a deposit, a swap, a flash
    loan): the supply change is paid for, not free."""
    if _VALUE in function.all_solidity_variables_read():
        return True
    if any(not isinstance(ir, LibraryCall) for _, ir in function.all_high_level_calls()):
        return True
    if function.all_low_level_calls():
        return True
    return any(ir.function.name.startswith(_RAW_CALLS) for ir in function.all_solidity_calls())


class UnprotectedMint(AbstractDetector):
    ARGUMENT = "unprotected-mint"
    HELP = "Anyone can mint tokens or burn another holder's: the supply changes unchecked"
    IMPACT = DetectorClassification.HIGH
    CONFIDENCE = DetectorClassification.MEDIUM

    WIKI = "https://github.com/defiagent/defiagent/blob/main/docs/allowlist.md#detectors"
    WIKI_TITLE = "Unprotected mint or supply change"
    WIKI_DESCRIPTION = (
        "A public function changes the token supply (its own arithmetic on the variable "
        "`totalSupply` reports, or a `_mint`/`_burn` helper) with no check of the caller, "
        "without taking payment (no ETH, no call to another contract), and, for a burn, "
        "without the caller being the holder."
    )
    WIKI_EXPLOIT_SCENARIO = """
```solidity
function mint(address to, uint256 amount) external {
    totalSupply += amount;
    balanceOf[to] += amount;
}
```
Eve mints herself a billion tokens and sells them into every pool."""
    WIKI_RECOMMENDATION = "Restrict minting to a role (`onlyOwner`, `onlyRole(MINTER_ROLE)`)."

    def _helpers(self, contract: Contract) -> tuple[set[Function], set[Function]]:
        supply = supply_variables(contract)
        transfers: set[Function] = set()
        for function in contract.functions:
            if function.name in ("transfer", "transferFrom") and function.visibility in (
                "public",
                "external",
            ):
                transfers |= set(callees(function))
        mints, burns = set(), set()
        for function in contract.functions:
            if function in transfers:
                continue  # a shared _update moves supply only on paths transfers never take
            kinds = _changes(function, supply)
            if "mint" in kinds or function.name.startswith("_mint"):
                mints.add(function)
            if "burn" in kinds or function.name.startswith("_burn"):
                burns.add(function)
        return mints, burns

    def _detect(self):
        results = []
        cache: dict[Contract, tuple[set[Function], set[Function]]] = {}
        for function in entry_points(self.compilation_unit):
            contract = contract_of(function)
            if contract is None:
                continue
            if contract not in cache:
                cache[contract] = self._helpers(contract)
            mints, burns = cache[contract]
            if function.is_protected() or _ONE_SHOT & {m.name for m in function.modifiers}:
                continue
            reached = set(callees(function))
            minted = reached & mints
            burnt = reached & burns
            if _SENDER in function.all_solidity_variables_read():
                burnt = set()  # the caller burns their own, or spends an allowance
            if not (minted or burnt) or _paid(function):
                continue
            what = "mint tokens" if minted else "burn another holder's tokens"
            info = [function, f" lets anyone {what} (no caller check, nothing paid)\n"]
            results.append(self.generate_result(info))
        return results
