"""A signed digest that can be replayed: no nonce the call consumes, no chain id or no
contract address in what was signed."""

from __future__ import annotations

from slither.analyses.data_dependency.data_dependency import is_dependent
from slither.core.declarations import Function
from slither.core.declarations.solidity_variables import (
    SolidityFunction,
    SolidityVariable,
    SolidityVariableComposed,
)
from slither.core.solidity_types import ElementaryType, MappingType
from slither.core.variables.state_variable import StateVariable
from slither.detectors.abstract_detector import AbstractDetector, DetectorClassification
from slither.slithir.operations import Index, InternalCall, LibraryCall, SolidityCall

from defiagent.vetting.detectors._flow import entry_points, operations, origins

ECRECOVER = SolidityFunction("ecrecover(bytes32,uint8,bytes32,bytes32)")
_CHAIN_ID = SolidityVariableComposed("block.chainid")
_THIS = SolidityVariable("this")
_BYTES32 = ElementaryType("bytes32")


def _recovers(function: Function) -> bool:
    return any(ir.function == ECRECOVER for ir in function.all_solidity_calls())


def _sites(function: Function):
    """(call, digest) for each signature check in the function's own body."""
    for ir in operations(function):
        if isinstance(ir, SolidityCall) and ir.function == ECRECOVER:
            yield ir, ir.arguments[0]
        elif (
            isinstance(ir, (InternalCall, LibraryCall))
            and isinstance(ir.function, Function)
            and _recovers(ir.function)
        ):
            digest = next((a for a in ir.arguments if getattr(a, "type", None) == _BYTES32), None)
            if digest is not None:
                yield ir, digest


def _marks_used(function: Function, digest) -> bool:
    """The call records the digest itself as spent (`used[digest] = true`)."""
    written = set(function.all_state_variables_written())
    for ir in operations(function):
        if (
            isinstance(ir, Index)
            and isinstance(ir.variable_left, StateVariable)
            and isinstance(ir.variable_left.type, MappingType)
            and ir.variable_left in written
        ):
            index = ir.variable_right
            if index == digest or is_dependent(index, digest, function):
                return True
    return False


class SignatureReplay(AbstractDetector):
    ARGUMENT = "signature-replay"
    HELP = "A signature can be replayed: no consumed nonce, chain id or contract address signed"
    IMPACT = DetectorClassification.HIGH
    CONFIDENCE = DetectorClassification.MEDIUM

    WIKI = "https://github.com/defiagent/defiagent/blob/main/docs/allowlist.md#detectors"
    WIKI_TITLE = "Replayable signature"
    WIKI_DESCRIPTION = (
        "A state-changing function accepts a signature (ecrecover, or a library such as "
        "ECDSA) over a digest that does not hold a nonce the call consumes, or does not bind "
        "the chain id and the contract's address: the same signature works again, on another "
        "chain, or on another copy of the contract."
    )
    WIKI_EXPLOIT_SCENARIO = """
```solidity
function redeem(address to, uint256 amount, uint8 v, bytes32 r, bytes32 s) external {
    bytes32 digest = keccak256(abi.encodePacked(to, amount));
    require(ecrecover(digest, v, r, s) == signer);
    credit[to] += amount;
}
```
Eve redeems one voucher the signer gave her a hundred times."""
    WIKI_RECOMMENDATION = (
        "Sign an EIP-712 digest (OpenZeppelin's EIP712 binds chain id and address) that "
        "holds a per-signer nonce the function increments, or mark each digest used."
    )

    def _missing(self, function: Function, digest) -> list[str]:
        flow = origins(digest, function)
        missing = []
        written = set(function.all_state_variables_written())
        consumed = any(
            isinstance(v, StateVariable) and v in written for v in flow.variables
        ) or _marks_used(function, digest)
        if not consumed:
            missing.append("a nonce the call consumes")
        has_chain = (
            _CHAIN_ID in flow.variables
            or flow.solidity_call("chainid()")
            or flow.assembly_mentions("chainid")
        )
        if not has_chain:
            missing.append("the chain id")
        if _THIS not in flow.variables:
            missing.append("the contract's address")
        return missing

    def _detect(self):
        results = []
        for function in entry_points(self.compilation_unit):
            for _call, digest in _sites(function):
                missing = self._missing(function, digest)
                if not missing:
                    continue
                info = [
                    function,
                    " accepts a signature over a digest without " + ", ".join(missing) + ": ",
                    _call.node,
                    "\n",
                ]
                results.append(self.generate_result(info))
        return results
