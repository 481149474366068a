"""Where a value comes from, across function boundaries, on Slither's data dependencies.

Slither's dependency data (slither.analyses.data_dependency) stops at a function's edge:
the result of an internal or library call depends on its arguments, a state variable on
what its own function wrote to it. The DeFi detectors need a little more: whether a
signed digest holds the chain id that a helper three calls deep put into a cached
domain separator, or whether a borrow limit comes from a pool's reserves read in a
library. `origins` follows a value into the callees whose results it takes and into the
functions that write the state variables it reads, a few levels deep.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from slither.analyses.data_dependency.data_dependency import get_dependencies
from slither.core.declarations import Contract, Function, FunctionContract
from slither.core.declarations.solidity_variables import (
    SolidityVariable,
    SolidityVariableComposed,
)
from slither.core.variables.state_variable import StateVariable
from slither.slithir.operations import (
    HighLevelCall,
    InternalCall,
    LibraryCall,
    Operation,
    SolidityCall,
)

DEPTH = 5


def operations(function: Function) -> list[Operation]:
    """The function's own IR, read from its nodes. Not `function.slithir_operations`:
    Slither 0.11's recursive getters (`all_slithir_operations()`) extend that cached list
    in place with every callee's operations once any detector has called them."""
    return [ir for node in function.nodes for ir in node.irs]


@dataclass
class Flow:
    variables: set = field(default_factory=set)  # every variable the value may derive from
    calls: set[Operation] = field(default_factory=set)  # calls whose result it takes
    functions: set[Function] = field(default_factory=set)  # functions the walk went through

    def called(self, *names: str) -> list[HighLevelCall]:
        """External calls (not library calls) to a function of one of these names."""
        return [
            c
            for c in self.calls
            if isinstance(c, HighLevelCall) and not isinstance(c, LibraryCall) and _name(c) in names
        ]

    def solidity_call(self, signature: str) -> bool:
        return any(isinstance(c, SolidityCall) and c.function.name == signature for c in self.calls)

    def assembly_mentions(self, word: str) -> bool:
        """Legacy inline assembly (before 0.6) is not turned into IR: look at its text."""
        for function in self.functions:
            for node in function.nodes:
                asm = node.inline_asm
                if isinstance(asm, str) and word in asm:
                    return True
        return False


def _name(call: Operation) -> str:
    function = getattr(call, "function", None)
    if function is None:
        return str(getattr(call, "function_name", ""))
    return str(getattr(function, "name", function))


def contract_of(function: Function) -> Contract | None:
    return function.contract if isinstance(function, FunctionContract) else None


def origins(value, function: Function, depth: int = DEPTH, *, through_state: bool = True) -> Flow:
    """`through_state`: also follow a state variable into the functions that write it
    (what a cached domain separator was built from); off, only this call's own flow."""
    flow = Flow()
    _walk(value, function, depth, flow, set(), through_state)
    return flow


def _walk(
    value, function: Function, depth: int, flow: Flow, seen: set, through_state: bool
) -> None:
    key = (function, value)
    if key in seen:
        return
    seen.add(key)
    flow.functions.add(function)
    try:
        deps = {value, *get_dependencies(value, function)}
    except (KeyError, AttributeError):  # no dependency data for this value
        deps = {value}
    flow.variables |= deps
    for ir in operations(function):
        lvalue = getattr(ir, "lvalue", None)
        if lvalue is None or lvalue not in deps:
            continue
        if isinstance(ir, (InternalCall, LibraryCall, HighLevelCall, SolidityCall)):
            flow.calls.add(ir)
        if depth <= 0:
            continue
        callee = getattr(ir, "function", None)
        if isinstance(ir, (InternalCall, LibraryCall)) and isinstance(callee, Function):
            for ret in [*callee.return_values, *callee.returns]:
                _walk(ret, callee, depth - 1, flow, seen, through_state)
            # Slither does not always tie a call's result to its arguments: do it here.
            for argument in ir.arguments:
                _walk(argument, function, depth - 1, flow, seen, through_state)
    if depth <= 0 or not through_state:
        return
    contract = contract_of(function)
    if contract is None:
        return
    for variable in [d for d in deps if isinstance(d, StateVariable)]:
        for writer in contract.functions:
            if variable in writer.state_variables_written:
                _walk(variable, writer, depth - 1, flow, seen, through_state)


def entry_points(compilation_unit) -> list[Function]:
    """Public and external functions that may change state, each once (where declared)."""
    out = []
    for contract in compilation_unit.contracts:
        if contract.is_interface or contract.is_library:
            continue
        for function in contract.functions_declared:
            if (
                function.is_implemented
                and not function.is_constructor
                and function.visibility in ("public", "external")
                and not function.view
                and not function.pure
            ):
                out.append(function)
    return out


def callees(function: Function) -> list[Function]:
    """The function and every internal or library function it reaches."""
    found: list[Function] = [function]
    todo = [function]
    while todo:
        current = todo.pop()
        for ir in [*current.internal_calls, *current.library_calls]:
            callee = ir.function
            if isinstance(callee, Function) and callee not in found:
                found.append(callee)
                todo.append(callee)
        for modifier in current.modifiers:
            if modifier not in found:
                found.append(modifier)
                todo.append(modifier)
    return found


# ------------------------------------------------------------------ token balances

THIS = SolidityVariable("this")
SENDER = SolidityVariableComposed("msg.sender")


def _argument_origins(call: Operation, index: int) -> set:
    arguments = getattr(call, "arguments", None) or []
    if index >= len(arguments):
        return set()
    function = call.node.function
    return origins(arguments[index], function, depth=1).variables


def balance_of_this(call: Operation) -> bool:
    """`token.balanceOf(address(this))` or `address(this).balance`."""
    if isinstance(call, HighLevelCall) and not isinstance(call, LibraryCall):
        return _name(call) == "balanceOf" and THIS in _argument_origins(call, 0)
    if isinstance(call, SolidityCall) and call.function.name == "balance(address)":
        return THIS in _argument_origins(call, 0)
    return False


def balance_of_pool(call: Operation) -> bool:
    """`token.balanceOf(pool)` for an address the contract holds or computes: not itself,
    not the caller, not an argument the caller passed."""
    if not isinstance(call, HighLevelCall) or isinstance(call, LibraryCall):
        return False
    if _name(call) != "balanceOf":
        return False
    where = _argument_origins(call, 0)
    parameters = set(call.node.function.parameters)
    return not (where & {THIS, SENDER} or where & parameters)
