"""Vault shares priced from the vault's own token balance, with no virtual offset."""

from __future__ import annotations

from slither.core.declarations import Function
from slither.core.variables.state_variable import StateVariable
from slither.detectors.abstract_detector import AbstractDetector, DetectorClassification
from slither.slithir.operations import (
    Binary,
    BinaryType,
    InternalCall,
    LibraryCall,
    SolidityCall,
)
from slither.slithir.variables import Constant

from defiagent.vetting.detectors._flow import (
    Flow,
    balance_of_this,
    contract_of,
    operations,
    origins,
)
from defiagent.vetting.detectors.unprotected_mint import supply_variables


def _divisions(function: Function):
    """(operation, divisor) for `a / b` and `mulDiv(x, y, denominator)`."""
    for ir in operations(function):
        if isinstance(ir, Binary) and ir.type == BinaryType.DIVISION:
            yield ir, ir.variable_right
        elif (
            isinstance(ir, (InternalCall, LibraryCall))
            and getattr(ir.function, "name", "") == "mulDiv"
            and len(ir.arguments) >= 3
        ):
            yield ir, ir.arguments[2]


def _constant(value, function: Function) -> bool:
    """A literal, a constant, or something computed only from those and pure functions."""
    if isinstance(value, Constant):
        return True
    if isinstance(value, StateVariable):
        return value.is_constant
    flow = origins(value, function, depth=2)
    for v in flow.variables:
        if v is value or isinstance(v, Constant):
            continue
        if isinstance(v, StateVariable) and not v.is_constant:
            return False
        if v in function.parameters:
            return False
    return all(
        isinstance(c, SolidityCall)
        or (
            isinstance(c, (InternalCall, LibraryCall))
            and (c.function.pure or c.function.view)
            and not c.arguments
        )
        for c in flow.calls
    )


def _offset(flow: Flow) -> bool:
    """Some sum on the way adds a constant (OpenZeppelin's `totalAssets() + 1`)."""
    for function in flow.functions:
        for ir in operations(function):
            if (
                isinstance(ir, Binary)
                and ir.type == BinaryType.ADDITION
                and ir.lvalue in flow.variables
                and any(_constant(v, function) for v in (ir.variable_left, ir.variable_right))
            ):
                return True
    return False


class VaultShareInflation(AbstractDetector):
    ARGUMENT = "vault-share-inflation"
    HELP = "Shares are priced from the vault's own balance with no virtual offset (donation attack)"
    IMPACT = DetectorClassification.HIGH
    CONFIDENCE = DetectorClassification.MEDIUM

    WIKI = "https://github.com/defiagent/defiagent/blob/main/docs/allowlist.md#detectors"
    WIKI_TITLE = "Vault share inflation"
    WIKI_DESCRIPTION = (
        "A contract that issues shares divides by its own token balance (`balanceOf(this)` "
        "or `address(this).balance`) with no virtual shares or assets added: the first "
        "depositor donates tokens to inflate the share price, and later deposits round down "
        "to zero shares."
    )
    WIKI_EXPLOIT_SCENARIO = """
```solidity
shares = supply == 0 ? assets : assets * supply / asset.balanceOf(address(this));
```
Eve deposits 1 wei, transfers 10,000 tokens to the vault, and Bob's 9,999-token deposit
mints 0 shares that Eve then redeems."""
    WIKI_RECOMMENDATION = (
        "Add virtual shares and assets (OpenZeppelin ERC4626's `_decimalsOffset`), or track "
        "deposits in storage instead of reading the balance."
    )

    def _detect(self):
        results = []
        for contract in self.compilation_unit.contracts:
            if contract.is_interface or contract.is_library:
                continue
            for function in contract.functions_declared:
                owner = contract_of(function)
                if owner is None or not function.is_implemented:
                    continue
                if not supply_variables(owner):
                    continue  # issues no shares
                for ir, divisor in _divisions(function):
                    flow = origins(divisor, function, through_state=False)
                    if not any(balance_of_this(c) for c in flow.calls) or _offset(flow):
                        continue
                    info = [
                        function,
                        " prices shares from the vault's own balance with no virtual offset: ",
                        ir.node,
                        "\n",
                    ]
                    results.append(self.generate_result(info))
        return results
