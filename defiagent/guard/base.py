"""What every guard and risk rule is: metadata on the class, one pure `check`.

Rules never do I/O. Everything they need from the chain (codehashes, fees, the market) is
read beforehand by the agent and handed over in a `GuardContext`; the call itself comes
decoded once against its allowlist entry, as a `GuardRequest`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Generic, TypeVar, cast

from pydantic import BaseModel, ConfigDict

from defiagent.allowlist.models import ActiveAllowlist, AllowedFunction, AllowlistEntry, Role
from defiagent.decisions import Verdict
from defiagent.execution.models import PlannedCall
from defiagent.guard.calldata import CalldataError, DecodedCall, decode_call, selector_of
from defiagent.market.models import MarketSnapshot


class Severity(StrEnum):
    CRITICAL = "critical"  # breaking it can lose funds outright
    HIGH = "high"  # breaking it can lose a large share of funds
    MEDIUM = "medium"  # a limit on how much can go wrong
    LOW = "low"  # hygiene


class RuleConfig(BaseModel):
    """A rule's own section of agent.toml ([guard.<section>] or [risk.<section>])."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# The config type of a rule: `class SlippageBound(Rule[SlippageConfig])` reads
# `self.config.max_slippage_bps` as a float, not an attribute RuleConfig lacks.
C = TypeVar("C", bound=RuleConfig)


@dataclass(frozen=True, slots=True)
class FeeQuote:
    base_fee_per_gas: int
    max_priority_fee_per_gas: int


@dataclass(frozen=True, slots=True)
class RiskState:
    """Portfolio figures in the numeraire, computed by the agent from its own history."""

    value_now: float | None = None
    loss_pct_in_window: float | None = None  # vs the highest value in the loss window
    drawdown_pct: float | None = None  # vs the all-time peak since start
    position_values: dict[str, float] = field(default_factory=dict)  # token -> value
    # The strategy being decided for (filled in per strategy by the agent):
    strategy_exposure: float = 0.0  # value of the positions this strategy opened
    trades_in_window: int = 0  # its executed trades in the trade-count window
    consecutive_losses: int = 0  # its closing trades that lost, in a row, latest last
    last_loss_at: float | None = None  # when the latest of those closed
    gas_spent_wei: int = 0  # gas the agent paid in the gas window (all strategies)
    unvalued_reason: str = ""  # when value_now is None: which holding has no price, and why


@dataclass(frozen=True, slots=True)
class GuardContext:
    """Everything a rule may look at besides the call. Built by the agent, read-only."""

    agent: str
    chain_id: int
    allowlist: ActiveAllowlist
    now: int  # unix seconds
    block_number: int = 0
    block_timestamp: int = 0
    codehashes: dict[str, str] = field(default_factory=dict)  # address -> observed codehash
    implementations: dict[str, tuple[str, str]] = field(
        default_factory=dict
    )  # proxy -> (impl, codehash)
    kill_switch_on: bool = False
    kill_switch_reason: str = ""
    market: MarketSnapshot | None = None
    prices: dict[str, float] = field(default_factory=dict)  # numeraire per smallest unit; "ETH"
    spent_in_window: float = 0.0  # numeraire already spent in the value-cap window
    strategy: str = ""
    intent_kind: str = ""
    intents_in_window: int = 0  # this strategy's intents in the rate window, this one included
    fees: FeeQuote | None = None
    risk: RiskState = field(default_factory=RiskState)
    position_exit: str = ""  # set when the agent itself closes a position (e.g. "stop-loss")
    _index: dict[str, AllowlistEntry] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Lower-case index: rules look entries up many times per decision, and checksumming
        # an address (a keccak) each time would dominate the guard's cost.
        index = {a.lower(): e for a, e in self.allowlist.entries.items()}
        object.__setattr__(self, "_index", index)

    def entry(self, address: str) -> AllowlistEntry | None:
        return self._index.get(address.lower()) if isinstance(address, str) else None

    def is_token(self, address: str) -> bool:
        e = self.entry(address)
        return e is not None and e.role in (Role.TOKEN, Role.WRAPPED_NATIVE)


@dataclass(frozen=True, slots=True)
class GuardRequest:
    """A planned call, with its allowlist entry and function found and its calldata decoded."""

    call: PlannedCall
    entry: AllowlistEntry | None
    function: AllowedFunction | None
    decoded: DecodedCall | None
    decode_error: str | None

    @classmethod
    def build(cls, call: PlannedCall, ctx: GuardContext) -> GuardRequest:
        entry = ctx.entry(call.target)
        if entry is not None and entry.revoked:
            entry = None
        function = decoded = error = None
        try:
            selector = selector_of(call.data)
        except CalldataError as exc:
            selector, error = None, str(exc)
        if entry is not None and selector is not None:
            function = entry.function(selector)
            if function is None:
                error = f"function {selector} is not allowed on {entry.name}"
            else:
                try:
                    decoded = decode_call(function.signature, call.data)
                except CalldataError as exc:
                    error = str(exc)
        elif entry is None:
            error = f"{call.target} is not an active allowlist entry"
        return cls(call=call, entry=entry, function=function, decoded=decoded, decode_error=error)


class Described(Generic[C]):
    """Metadata on the class, a config section, and a start-up explanation.

    Shared by the guard's rules (which check one call) and the risk package's exit rules
    (which decide when the agent closes a position): both are listed by `rules list` and
    configured the same way.
    """

    id: ClassVar[str]
    title: ClassVar[str]  # CamelCase name people see, e.g. "RecipientIsSelf"
    description: ClassVar[str]  # one sentence: what it refuses (or does)
    threat: ClassVar[str] = ""  # what goes wrong without it
    severity: ClassVar[Severity]
    group: ClassVar[str] = "guard"  # "guard", "risk" or "exit"
    section: ClassVar[str | None] = None  # config section name; None = not configurable
    # The class of C (a ClassVar cannot name a type variable): each rule sets both.
    Config: ClassVar[type[RuleConfig]] = RuleConfig
    config: C

    def __init__(self, config: C | None = None) -> None:
        # cast: Config is C's class, so its default instance is a C.
        self.config = config if config is not None else cast(C, self.Config())

    def explain(self) -> str:
        """The start-up line: what this rule does with its configured values."""
        return f"{self.title}: {self.description}"

    @property
    def enabled(self) -> bool:
        return bool(getattr(self.config, "enabled", True))

    @classmethod
    def config_section(cls) -> str | None:
        """Where its config lives in agent.toml ("exit" rules live under [risk])."""
        if not cls.section:
            return None
        return f"{'guard' if cls.group == 'guard' else 'risk'}.{cls.section}"

    @classmethod
    def metadata(cls) -> dict[str, Any]:
        return {
            "id": cls.id,
            "title": cls.title,
            "group": cls.group,
            "severity": str(cls.severity),
            "description": cls.description,
            "threat": cls.threat,
            "config_section": cls.config_section(),
            "config": {
                name: {
                    "default": f.default if not callable(f.default) else None,
                    "description": f.description or "",
                }
                for name, f in cls.Config.model_fields.items()
            },
        }


class Rule(Described[C], ABC):
    """One check. Subclasses set the metadata and implement `check`."""

    @abstractmethod
    def check(self, req: GuardRequest, ctx: GuardContext) -> Verdict: ...

    def allow(self) -> Verdict:
        return Verdict.allow(self.id)

    def refuse(self, reason: str) -> Verdict:
        return Verdict.refuse(self.id, reason)


def unreadable(rule: Rule[Any], req: GuardRequest, what: str) -> Verdict:
    """The verdict of an argument rule on a call whose arguments cannot be read.

    Such a call is always refused by TargetAllowlisted or FunctionInScope, which every
    Guard contains (see Guard.FLOOR); repeating the refusal under every argument rule would
    only bury the reason. The verdict says so instead of passing silently.
    """
    return Verdict(
        rule=rule.id,
        allowed=True,
        reason=f"{what} not checked: {req.decode_error or 'the call did not decode'}",
    )
