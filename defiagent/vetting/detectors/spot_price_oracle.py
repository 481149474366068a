"""A pool's spot reserves or balances decide a borrow limit or an amount paid out."""

from __future__ import annotations

from slither.analyses.data_dependency.data_dependency import is_dependent
from slither.core.declarations import Function
from slither.core.declarations.solidity_variables import SolidityVariableComposed
from slither.detectors.abstract_detector import AbstractDetector, DetectorClassification
from slither.slithir.operations import (
    Binary,
    BinaryType,
    HighLevelCall,
    Send,
    Transfer,
)

from defiagent.vetting.detectors._flow import (
    balance_of_pool,
    callees,
    entry_points,
    operations,
    origins,
)

_VALUE = SolidityVariableComposed("msg.value")
_SPOT_CALLS = ("getReserves", "slot0")
_PAYOUTS = ("transfer", "transferFrom", "safeTransfer", "safeTransferFrom", "safeTransferETH")
_COMPARISONS = (
    BinaryType.LESS,
    BinaryType.LESS_EQUAL,
    BinaryType.GREATER,
    BinaryType.GREATER_EQUAL,
)


def _spot(value, function: Function) -> bool:
    flow = origins(value, function)
    return bool(flow.called(*_SPOT_CALLS)) or any(balance_of_pool(c) for c in flow.calls)


def _payout_amounts(function: Function) -> list:
    """(operation, amount) for every token or ETH payment in the function's own body."""
    out = []
    for ir in operations(function):
        if isinstance(ir, HighLevelCall) and getattr(ir.function, "name", "") in _PAYOUTS:
            if ir.arguments:
                out.append((ir, ir.arguments[-1]))
        elif isinstance(ir, (Transfer, Send)):
            out.append((ir, ir.call_value))
    return out


def _comparisons(function: Function):
    for node in function.nodes:
        if not (node.contains_require_or_assert() or node.contains_if()):
            continue
        for ir in node.irs:
            if isinstance(ir, Binary) and ir.type in _COMPARISONS:
                yield ir


class SpotPriceOracle(AbstractDetector):
    ARGUMENT = "spot-price-oracle"
    HELP = "A pool's spot reserves or balance decide a borrow limit or an amount paid out"
    IMPACT = DetectorClassification.HIGH
    CONFIDENCE = DetectorClassification.MEDIUM

    WIKI = "https://github.com/defiagent/defiagent/blob/main/docs/allowlist.md#detectors"
    WIKI_TITLE = "Spot price used as an oracle"
    WIKI_DESCRIPTION = (
        "A value read from a pool's current state (`getReserves()`, `slot0()`, or a token's "
        "`balanceOf(pool)`) flows into a limit the function checks or into an amount it "
        "pays, and no bound the caller chose (a minimum out, a maximum in) caps it. One "
        "flash loan moves that price inside the same transaction."
    )
    WIKI_EXPLOIT_SCENARIO = """
```solidity
(uint112 r0, uint112 r1, ) = pair.getReserves();
uint256 limit = deposited[msg.sender] * r1 / r0 * 75 / 100;
require(borrowed[msg.sender] + amount <= limit);
debt.transfer(msg.sender, amount);
```
Eve flash-swaps the pair to inflate the collateral's price, borrows everything, and
lets the swap unwind."""
    WIKI_RECOMMENDATION = (
        "Price from an oracle (a Chainlink feed, a TWAP over many blocks) and check it "
        "against the spot price, never from spot reserves alone."
    )

    def _bounded(self, function: Function) -> bool:
        """A comparison of a spot-derived value with an argument the caller passed only to
        bound it (a slippage limit): the caller, not the pool, decides the worst case."""
        paid = [amount for _, amount in _payout_amounts(function)]
        for ir in _comparisons(function):
            for mine, other in (
                (ir.variable_left, ir.variable_right),
                (ir.variable_right, ir.variable_left),
            ):
                if not _spot(mine, function):
                    continue
                if other == _VALUE or is_dependent(other, _VALUE, function):
                    return True  # the ETH sent is the most the caller pays
                limits = [
                    p for p in function.parameters if other == p or is_dependent(other, p, function)
                ]
                if limits and not any(
                    amount == p or is_dependent(amount, p, function)
                    for p in limits
                    for amount in paid
                ):
                    return True
        return False

    def _sinks(self, function: Function) -> list:
        sinks = [ir for ir, amount in _payout_amounts(function) if _spot(amount, function)]
        for ir in _comparisons(function):
            if _spot(ir.variable_left, function) or _spot(ir.variable_right, function):
                sinks.append(ir)
        return sinks

    def _detect(self):
        results = []
        for function in entry_points(self.compilation_unit):
            reached = callees(function)
            sinks = [s for f in reached for s in self._sinks(f)]
            if not sinks or any(self._bounded(f) for f in reached):
                continue
            info = [
                function,
                " lets a pool's spot price decide a limit or an amount paid: ",
                sinks[0].node,
                "\n",
            ]
            results.append(self.generate_result(info))
        return results
