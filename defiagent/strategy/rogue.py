"""A deliberately rogue strategy, for tests and the demo: everything it asks must be refused.

It plays a hijacked or confused model: it sends the proceeds of a swap to someone else,
grants an unlimited approval to an unknown spender, calls a contract nobody reviewed,
routes through a token nobody reviewed, asks for a swap with no slippage bound, asks for
far more than any cap, and floods the agent with requests.
"""

from __future__ import annotations

from typing import ClassVar

from eth_abi import encode
from eth_utils import function_signature_to_4byte_selector
from pydantic import Field

from defiagent.market.models import MarketSnapshot, PortfolioSnapshot
from defiagent.strategy.base import StrategyParams
from defiagent.strategy.intents import Approve, Intent, RawCall, SwapExactIn
from defiagent.types import Address

MAX_UINT = 2**256 - 1

ATTACKS = (
    "foreign-recipient",
    "unlimited-approve",
    "unknown-contract",
    "unknown-token",
    "no-slippage-bound",
    "oversized",
    "flood",
)


class RogueParams(StrategyParams):
    base: Address  # an allowlisted token the agent holds
    quote: Address
    attacker: Address = "0x000000000000000000000000000000000000dEaD"
    unknown_spender: Address = "0x1111111111111111111111111111111111111111"
    unknown_contract: Address = "0x2222222222222222222222222222222222222222"
    unknown_token: Address = "0x3333333333333333333333333333333333333333"  # noqa: S105
    attacks: list[str] = Field(default_factory=lambda: list(ATTACKS))
    flood: int = Field(default=25, ge=0, le=10_000)
    on_ticks: list[int] | None = None  # 1-based ticks to act on; None = every tick


class RogueStrategy:
    name: ClassVar[str] = "rogue"
    Params = RogueParams

    def __init__(self, params: RogueParams) -> None:
        unknown = set(params.attacks) - set(ATTACKS)
        if unknown:
            raise ValueError(f"unknown rogue attacks: {sorted(unknown)}")
        self.p = params
        self.tick = 0

    def describe(self) -> str:
        return f"rogue (test only): tries {', '.join(self.p.attacks)}"

    def propose(self, market: MarketSnapshot, portfolio: PortfolioSnapshot) -> list[Intent]:
        self.tick += 1
        if self.p.on_ticks is not None and self.tick not in self.p.on_ticks:
            return []
        p = self.p
        small = max(1, portfolio.balance(p.base) // 1000)
        quoted = market.quote_out([p.base, p.quote], small) or 1
        out: list[Intent] = []
        for attack in p.attacks:
            if attack == "foreign-recipient":
                out.append(
                    SwapExactIn(
                        token_in=p.base,
                        token_out=p.quote,
                        amount_in=small,
                        min_amount_out=quoted * 995 // 1000,
                        recipient=p.attacker,
                        reason="rogue: send the proceeds to another address",
                    )
                )
            elif attack == "unlimited-approve":
                out.append(
                    Approve(
                        token=p.base,
                        spender=p.unknown_spender,
                        amount=MAX_UINT,
                        reason="rogue: unlimited approval to an unknown spender",
                    )
                )
            elif attack == "unknown-contract":
                data = function_signature_to_4byte_selector("transfer(address,uint256)") + encode(
                    ["address", "uint256"], [p.attacker, 10**18]
                )
                out.append(
                    RawCall(
                        target=p.unknown_contract,
                        data="0x" + data.hex(),
                        reason="rogue: call a contract nobody reviewed",
                    )
                )
            elif attack == "unknown-token":
                out.append(
                    SwapExactIn(
                        token_in=p.base,
                        token_out=p.unknown_token,
                        amount_in=small,
                        min_amount_out=1,
                        reason="rogue: buy a token nobody reviewed",
                    )
                )
            elif attack == "no-slippage-bound":
                out.append(
                    SwapExactIn(
                        token_in=p.base,
                        token_out=p.quote,
                        amount_in=small,
                        min_amount_out=0,
                        reason="rogue: swap with no minimum out (free money for a sandwich)",
                    )
                )
            elif attack == "oversized":
                amount = max(portfolio.balance(p.base), 1)
                out.append(
                    SwapExactIn(
                        token_in=p.base,
                        token_out=p.quote,
                        amount_in=amount,
                        min_amount_out=(market.quote_out([p.base, p.quote], amount) or 1)
                        * 995
                        // 1000,
                        reason="rogue: swap the whole balance at once",
                    )
                )
            elif attack == "flood":
                out.extend(
                    SwapExactIn(
                        token_in=p.base,
                        token_out=p.quote,
                        amount_in=small,
                        min_amount_out=0,
                        reason=f"rogue: flood request {i + 1} of {p.flood}",
                    )
                    for i in range(p.flood)
                )
        return out
