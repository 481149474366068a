"""Arithmetic that wraps around silently: solc before 0.8, no SafeMath, no check."""

from __future__ import annotations

from slither.analyses.data_dependency.data_dependency import is_dependent
from slither.core.declarations import Function
from slither.core.declarations.solidity_variables import SolidityVariableComposed
from slither.core.variables.state_variable import StateVariable
from slither.detectors.abstract_detector import AbstractDetector, DetectorClassification
from slither.slithir.operations import Binary, BinaryType
from slither.slithir.variables import Constant, ReferenceVariable

from defiagent.vetting.detectors._flow import entry_points, operations, origins

_VALUE = SolidityVariableComposed("msg.value")
_WRAPS = (BinaryType.ADDITION, BinaryType.SUBTRACTION, BinaryType.MULTIPLICATION, BinaryType.POWER)
_COMPARISONS = (
    BinaryType.LESS,
    BinaryType.LESS_EQUAL,
    BinaryType.GREATER,
    BinaryType.GREATER_EQUAL,
    BinaryType.EQUAL,
    BinaryType.NOT_EQUAL,
)


def _checked_compiler(version: str | None) -> bool:
    try:
        major, minor = (int(x) for x in (version or "0.8.0").split(".")[:2])
    except ValueError:
        return True  # unknown: say nothing rather than guess
    return (major, minor) >= (0, 8)


def _roots(value, function: Function) -> set:
    """The parameters, state and local variables a value is computed from."""
    out = set()
    for v in origins(value, function, depth=0, through_state=False).variables:
        if isinstance(v, ReferenceVariable):
            v = v.points_to_origin
        if not isinstance(v, Constant) and not type(v).__name__.startswith(("Temporary", "Tuple")):
            out.add(v)
    return out


def _reaches_state(ir: Binary, function: Function) -> bool:
    target = ir.lvalue
    if isinstance(target, ReferenceVariable):
        target = target.points_to_origin
    if isinstance(target, StateVariable):
        return True
    return any(is_dependent(v, ir.lvalue, function) for v in function.state_variables_written)


class UncheckedArithmetic(AbstractDetector):
    ARGUMENT = "unchecked-arithmetic"
    HELP = "Arithmetic on caller input that can wrap around (solc < 0.8, no SafeMath, no check)"
    IMPACT = DetectorClassification.HIGH
    CONFIDENCE = DetectorClassification.MEDIUM

    WIKI = "https://github.com/defiagent/defiagent/blob/main/docs/allowlist.md#detectors"
    WIKI_TITLE = "Unchecked arithmetic before Solidity 0.8"
    WIKI_DESCRIPTION = (
        "Compiled with solc older than 0.8, a sum, difference, product or power of values "
        "the caller controls is written to storage with no SafeMath and no check that rules "
        "out the wrap-around (a comparison of the operands; for a product, a division that "
        "checks it)."
    )
    WIKI_EXPLOIT_SCENARIO = """
```solidity
uint256 amount = receivers.length * value;   // 2 * 2**255 == 0
require(balanceOf[msg.sender] >= amount);
```
Eve sends two receivers 2**255 tokens each from an empty balance (BeautyChain, 2018)."""
    WIKI_RECOMMENDATION = "Use SafeMath (or compile with 0.8, which checks by default)."

    def _guarded(self, ir: Binary, function: Function) -> bool:
        if ir.type in (BinaryType.MULTIPLICATION, BinaryType.POWER):
            product = _roots(ir.lvalue, function) | {ir.lvalue}
            for other in operations(function):
                if (
                    isinstance(other, Binary)
                    and other.type == BinaryType.DIVISION
                    and (_roots(other.variable_left, function) | {other.variable_left}) & product
                ):
                    return True  # `c / a == b`
            return False
        left, right = _roots(ir.variable_left, function), _roots(ir.variable_right, function)
        result = _roots(ir.lvalue, function) | {ir.lvalue}
        for node in function.nodes:
            if not (node.contains_require_or_assert() or node.contains_if()):
                continue
            for cmp in node.irs:
                if isinstance(cmp, Binary) and cmp.type in _COMPARISONS:
                    seen = _roots(cmp.variable_left, function) | _roots(
                        cmp.variable_right, function
                    )
                    seen |= {cmp.variable_left, cmp.variable_right}
                    if (seen & left and seen & right) or seen & result:
                        return True
        return False

    def _detect(self):
        if _checked_compiler(self.compilation_unit.solc_version):
            return []
        results = []
        for function in entry_points(self.compilation_unit):
            inputs = {*function.parameters, _VALUE}
            for node in function.nodes:
                for ir in node.irs:
                    if not isinstance(ir, Binary) or ir.type not in _WRAPS:
                        continue
                    operands = (ir.variable_left, ir.variable_right)
                    if ir.type == BinaryType.ADDITION and any(
                        isinstance(v, Constant) or v == _VALUE for v in operands
                    ):
                        continue  # a counter (`i + 1`) or ETH sent: neither reaches 2**256
                    if not any(_roots(v, function) & inputs for v in operands):
                        continue
                    if not _reaches_state(ir, function) or self._guarded(ir, function):
                        continue
                    info = [function, " can wrap around without a check: ", node, "\n"]
                    results.append(self.generate_result(info))
        return results
