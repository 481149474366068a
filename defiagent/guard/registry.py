"""Every rule the agent knows, in the order the guard runs them.

The CLI's `defiagent rules list`, the docs table, the config sections and the audit log's
rule ids all come from this list and the metadata on each class; nothing is written twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from defiagent.errors import ConfigError
from defiagent.guard.base import Described, Rule
from defiagent.guard.rules.approval_bounded import ApprovalBounded
from defiagent.guard.rules.argument_equals import ArgumentEquals
from defiagent.guard.rules.chain_matches import ChainMatches
from defiagent.guard.rules.codehash_pinned import CodehashPinned
from defiagent.guard.rules.deadline_bounded import DeadlineBounded
from defiagent.guard.rules.fee_cap import FeeCap
from defiagent.guard.rules.function_in_scope import FunctionInScope
from defiagent.guard.rules.intent_kind_allowed import IntentKindAllowed
from defiagent.guard.rules.intent_rate_limit import IntentRateLimit
from defiagent.guard.rules.kill_switch_off import KillSwitchOff
from defiagent.guard.rules.price_sane import PriceSane
from defiagent.guard.rules.recipient_is_self import RecipientIsSelf
from defiagent.guard.rules.sender_is_agent import SenderIsAgent
from defiagent.guard.rules.slippage_bound import SlippageBound
from defiagent.guard.rules.spender_allowlisted import SpenderAllowlisted
from defiagent.guard.rules.target_allowlisted import TargetAllowlisted
from defiagent.guard.rules.tokens_allowlisted import TokensAllowlisted
from defiagent.guard.rules.value_cap_per_tx import PerTxValueCap
from defiagent.guard.rules.value_cap_per_window import WindowValueCap
from defiagent.risk.exits import ExitRule, StopLoss, TakeProfit
from defiagent.risk.loss_cooldown import LossCooldown
from defiagent.risk.max_daily_loss import MaxDailyLoss
from defiagent.risk.max_drawdown import MaxDrawdown
from defiagent.risk.max_gas import MaxGasPerDay
from defiagent.risk.max_position import MaxPosition
from defiagent.risk.max_trades import MaxTradesPerWindow
from defiagent.risk.strategy_capital import StrategyCapital
from defiagent.simulation.checks import PLAN_CHECKS

GUARD_RULES: tuple[type[Rule[Any]], ...] = (
    KillSwitchOff,
    ChainMatches,
    SenderIsAgent,
    IntentKindAllowed,
    IntentRateLimit,
    TargetAllowlisted,
    CodehashPinned,
    FunctionInScope,
    RecipientIsSelf,
    SpenderAllowlisted,
    ApprovalBounded,
    TokensAllowlisted,
    ArgumentEquals,
    DeadlineBounded,
    PriceSane,
    SlippageBound,
    PerTxValueCap,
    WindowValueCap,
    FeeCap,
)
RISK_RULES: tuple[type[Rule[Any]], ...] = (
    MaxDailyLoss,
    MaxDrawdown,
    MaxGasPerDay,
    MaxTradesPerWindow,
    LossCooldown,
    MaxPosition,
    StrategyCapital,
)
ALL_RULES: tuple[type[Rule[Any]], ...] = GUARD_RULES + RISK_RULES
# Not checks on a call: when the agent closes a position itself. Configured under [risk].
EXIT_RULES: tuple[type[ExitRule[Any]], ...] = (StopLoss, TakeProfit)
# Not checks on a call either: a whole plan's probe (the round trip of a buy), run by the agent
# after the outcome checks. Listed with them; configured under [guard].
LISTED: tuple[type[Described[Any]], ...] = ALL_RULES + EXIT_RULES + PLAN_CHECKS

_ids = [r.id for r in LISTED]
assert len(_ids) == len(set(_ids)), "rule ids must be unique"


def by_id(rule_id: str) -> type[Described[Any]] | None:
    return next((r for r in LISTED if r.id == rule_id), None)


def _section_model(name: str, rules: tuple[type[Described[Any]], ...]) -> type[BaseModel]:
    fields: dict[str, Any] = {
        r.section: (r.Config, Field(default_factory=r.Config, description=r.description))
        for r in rules
        if r.section
    }
    return create_model(name, __config__=ConfigDict(extra="forbid", frozen=True), **fields)


# The [guard] and [risk] tables of agent.toml: one sub-table per configurable rule.
if TYPE_CHECKING:
    # Built from the rules at run time: to mypy, models whose sub-tables are Any.
    class GuardSection(BaseModel):
        def __getattr__(self, section: str) -> Any: ...

    class RiskSection(BaseModel):
        def __getattr__(self, section: str) -> Any: ...

else:
    GuardSection = _section_model("GuardSection", GUARD_RULES + PLAN_CHECKS)
    RiskSection = _section_model("RiskSection", RISK_RULES + EXIT_RULES)


def build_rules(guard: BaseModel | None = None, risk: BaseModel | None = None) -> list[Rule[Any]]:
    """Instantiate every rule with its section (defaults where a section is absent)."""
    guard = guard if guard is not None else GuardSection()
    risk = risk if risk is not None else RiskSection()
    rules: list[Rule[Any]] = []
    for cls in ALL_RULES:
        source = guard if cls.group == "guard" else risk
        config = getattr(source, cls.section) if cls.section else None
        rule = cls(config)
        if rule.enabled:
            rules.append(rule)
    return rules


def build_exit_rules(risk: BaseModel | None = None) -> list[ExitRule[Any]]:
    risk = risk if risk is not None else RiskSection()
    rules = [cls(getattr(risk, cls.section)) for cls in EXIT_RULES]
    return [r for r in rules if r.enabled]


def merge_section(base: BaseModel, overrides: dict[str, Any], where: str) -> BaseModel:
    """`base` with some of its sub-tables' fields replaced (a strategy's own limits)."""
    data = base.model_dump()
    for section, fields in overrides.items():
        if section not in data:
            raise ConfigError(f"{where}.{section}: no such risk section")
        if not isinstance(fields, dict):
            raise ConfigError(f"{where}.{section}: must be a table")
        data[section] = {**data[section], **fields}
    try:
        return type(base).model_validate(data)
    except ValidationError as exc:
        raise _first_error(exc, f"{where}.") from exc


def parse_sections(
    guard: dict[str, Any] | None, risk: dict[str, Any] | None
) -> tuple[BaseModel, BaseModel]:
    """Validate raw [guard]/[risk] tables; a bad value names its field."""
    try:
        return GuardSection.model_validate(guard or {}), RiskSection.model_validate(risk or {})
    except ValidationError as exc:
        raise _first_error(exc) from exc


def _first_error(exc: ValidationError, prefix: str = "") -> ConfigError:
    """One sentence naming the first bad field."""
    first = exc.errors()[0]
    return ConfigError(f"{prefix}{'.'.join(str(x) for x in first['loc'])}: {first['msg']}")
