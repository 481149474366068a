"""What a planned call can take out of the portfolio, valued in the numeraire."""

from __future__ import annotations

from defiagent.execution.models import PlannedCall


def outflows(call: PlannedCall) -> dict[str, int]:
    """Asset -> amount the call may spend at most ("ETH" for native value)."""
    out: dict[str, int] = {}
    for delta in call.expected:
        if delta.min_delta < 0:
            key = delta.token or "ETH"
            out[key] = out.get(key, 0) + (-delta.min_delta)
    if call.value:
        # Value sent with the call is spent unless the expected deltas say it comes back as
        # a wrapped token; counting it here is the conservative side.
        out["ETH"] = max(out.get("ETH", 0), call.value)
    return out


def no_price(assets: list[str], what: str) -> str:
    """The refusal of a limit that cannot value `what` (fail closed)."""
    return f"no sane price for {', '.join(assets)}, so the {what} cannot be valued"


def outflow_value(call: PlannedCall, prices: dict[str, float]) -> tuple[float, list[str]]:
    """(value in the numeraire, assets that have no price)."""
    total, unpriced = 0.0, []
    for asset, amount in outflows(call).items():
        price = prices.get(asset)
        if price is None:
            unpriced.append(asset)
        else:
            total += amount * price
    return total, unpriced
