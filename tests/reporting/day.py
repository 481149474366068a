"""A realistic day of an agent's audit log, written with the real AuditLog at chosen times.

`AuditLog.record` stamps each record with `datetime.now(UTC)`; the writer below freezes
that clock at the moment each record is meant to happen, so the chain (and its hashes) is
exactly what a live agent would have written over the day.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

from defiagent.monitoring.audit_log import AuditLog
from defiagent.monitoring.events import LimitUsage, RiskEvent, TradeEvent
from defiagent.monitoring.interfaces import Alert, AlertKind, AlertSeverity

DAY = datetime(2025, 6, 1, tzinfo=UTC)
AGENT = "0x1111111111111111111111111111111111111111"
WETH = "0x2222222222222222222222222222222222222222"
USDC = "0x3333333333333333333333333333333333333333"
XSS = '<script>alert("pwned")</script><img src=x onerror=alert(1)>'


class _Frozen(datetime):
    current: datetime = DAY

    @classmethod
    def now(cls, tz=None):  # the only call AuditLog makes
        return cls.current


@dataclass
class ClockedLog:
    log: AuditLog
    moments: list[datetime] = field(default_factory=list)

    def at(self, moment: datetime, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        _Frozen.current = moment
        with mock.patch("defiagent.monitoring.audit_log.datetime", _Frozen):
            return self.log.record(kind, payload)


@contextmanager
def clocked(path: Path):
    with AuditLog(path) as log:
        yield ClockedLog(log)


@dataclass
class Expected:
    trades: int
    realized_pnl: float
    wins: int
    closed: int
    refusals_by_rule: dict[str, int]
    refused_intents: int
    intents: int
    executed: int
    failed: int
    value_start: float
    value_end: float
    traded_value: float
    trades_after_noon: int
    refusals_after_noon: int


TRADES = [
    # hour, direction, value, slippage bps, realized pnl
    (2, "buy", 1000.0, 10.0, None),
    (5, "sell", 1012.5, 20.0, 12.5),
    (8, "buy", 1000.0, 15.0, None),
    (11, "sell", 996.0, 25.0, -4.0),
    (14, "buy", 1000.0, 12.0, None),
    (17, "sell", 1007.5, 18.0, 7.5),
]
REFUSALS = [
    # hour, stage, [(rule, reason)]
    (3, "guard", [("per-tx-value-cap", "outflow 5000.00 above the cap of 2000.00")]),
    (
        9,
        "guard",
        [
            ("rate-limit", "31 intents in 60 s, limit 30"),
            ("per-tx-value-cap", "outflow 5000.00 above the cap of 2000.00"),
        ],
    ),
    (12, "guard", [("per-tx-value-cap", "outflow 4100.00 above the cap of 2000.00")]),
    (15, "simulation", [("simulation", f"the call reverted: {XSS}")]),
    (20, "guard", [("max-drawdown", "the portfolio is 10.20% below its peak (limit 10%)")]),
]


def value_at(hour: int) -> float:
    """The portfolio's value over the day: up in the morning, a dip in the evening."""
    if hour <= 12:
        return 10_000.0 + 20.0 * hour
    if hour <= 20:
        return 10_240.0 - 150.0 * (hour - 12)
    return 9_040.0 + 10.0 * (hour - 20)


def write_day(
    path: Path,
    *,
    mandate: dict[str, Any] | None = None,
    strategy: str = "mean-reversion",
) -> Expected:
    """Start, 24 hourly ticks (snapshot + risk), trades, refusals, a failure, an alert and
    the kill switch on and off again."""
    config: dict[str, Any] = {
        "chain_id": 31337,
        "rpc_url": "http://127.0.0.1",
        "strategy": {"name": strategy, "params": {"window": 20}},
    }
    if mandate is not None:
        config["strategy"]["mandate"] = mandate
    with clocked(path) as w:
        w.at(
            DAY,
            "start",
            {
                "mode": "run",
                "agent": AGENT,
                "chain_id": 31337,
                "config": config,
                "allowlist": {WETH: "WETH", USDC: "USDC"},
                "rules": ["kill-switch-off", "per-tx-value-cap", "rate-limit", "max-drawdown"],
            },
        )
        trades = {h: (d, v, s, p) for h, d, v, s, p in TRADES}
        refusals = {h: (stage, rs) for h, stage, rs in REFUSALS}
        peak = 0.0
        n = 0
        for hour in range(24):
            t = DAY + timedelta(hours=hour, minutes=1)
            value = value_at(hour)
            peak = max(peak, value)
            w.at(
                t,
                "snapshot",
                {"tick": hour + 1, "block": 100 + hour, "portfolio_value": value, "pools": []},
            )
            weth = 4000.0 + 100.0 * (hour % 5)
            w.at(
                t + timedelta(seconds=1),
                "risk",
                RiskEvent(
                    at=(t + timedelta(seconds=1)).timestamp(),
                    tick=hour + 1,
                    portfolio_value=value,
                    pnl=value - 10_000.0,
                    drawdown_pct=(peak - value) / peak * 100,
                    exposure={"WETH": weth, "USDC": value - weth},
                    strategy_exposure={strategy: weth},
                    limits=[
                        LimitUsage(
                            rule="max-drawdown",
                            used=(peak - value) / peak * 100,
                            limit=10.0,
                        ),
                        LimitUsage(
                            rule="window-value-cap", used=1000.0 * (hour // 3), limit=10_000
                        ),
                    ],
                    paused={strategy: "drawdown"} if hour >= 20 else {},
                ).model_dump(),
            )
            if hour in trades:
                direction, val, slip, pnl = trades[hour]
                n += 1
                moment = t + timedelta(minutes=5)
                iid = f"intent-{n}"
                w.at(
                    moment,
                    "intent",
                    {"tick": hour + 1, "strategy": strategy, "intent": {"id": iid}},
                )
                w.at(moment, "plan", {"intent_id": iid, "calls": []})
                w.at(moment, "executed", {"intent_id": iid, "tx_hashes": [f"0x{n:064x}"]})
                token_in, token_out = (USDC, WETH) if direction == "buy" else (WETH, USDC)
                w.at(
                    moment,
                    "trade",
                    TradeEvent(
                        at=moment.timestamp(),
                        strategy=strategy,
                        intent_id=iid,
                        kind="swap-exact-in",
                        token_in=token_in,
                        token_out=token_out,
                        amount_in=10**18,
                        amount_out=2 * 10**18,
                        value_in=val,
                        value_out=val - 1.0,
                        quoted_out=2 * 10**18 + 10**15,
                        slippage_bps=slip,
                        gas_used=120_000,
                        gas_cost_wei=10**14,
                        gas_cost_value=0.25,
                        realized_pnl=pnl,
                        portfolio_value=value,
                        tx_hashes=[f"0x{n:064x}"],
                    ).model_dump(),
                )
            if hour in refusals:
                stage, rs = refusals[hour]
                iid = f"refused-{hour}"
                moment = t + timedelta(minutes=7)
                w.at(
                    moment,
                    "intent",
                    {"tick": hour + 1, "strategy": strategy, "intent": {"id": iid}},
                )
                w.at(
                    moment,
                    "refused",
                    {
                        "intent_id": iid,
                        "stage": stage,
                        "refusals": [{"rule": r, "reason": why} for r, why in rs],
                    },
                )
            if hour == 18:
                moment = t + timedelta(minutes=9)
                w.at(moment, "intent", {"tick": 19, "strategy": strategy, "intent": {"id": "f-1"}})
                w.at(moment, "failed", {"intent_id": "f-1", "reason": "reverted on chain"})
            if hour == 20:
                alert = Alert(
                    kind=AlertKind.LIMIT_BREACH,
                    severity=AlertSeverity.WARNING,
                    title="max-drawdown paused mean-reversion",
                    detail="the portfolio is 10.20% below its peak (limit 10%)",
                    strategy=strategy,
                )
                w.at(t + timedelta(minutes=8), "alert", alert.model_dump(mode="json"))
            if hour == 21:
                w.at(
                    t + timedelta(minutes=10),
                    "kill-switch",
                    {"on": True, "reason": "drawdown review", "changed_by": "cli:ops"},
                )
            if hour == 23:
                w.at(
                    t + timedelta(minutes=10),
                    "kill-switch",
                    {"on": False, "reason": "reviewed", "changed_by": "cli:ops"},
                )
    by_rule: dict[str, int] = {}
    for _, _, rs in REFUSALS:
        for rule, _ in rs:
            by_rule[rule] = by_rule.get(rule, 0) + 1
    closed = [p for *_, p in TRADES if p is not None]
    return Expected(
        trades=len(TRADES),
        realized_pnl=sum(closed),
        wins=sum(1 for p in closed if p > 0),
        closed=len(closed),
        refusals_by_rule=by_rule,
        refused_intents=len(REFUSALS),
        intents=len(TRADES) + len(REFUSALS) + 1,
        executed=len(TRADES),
        failed=1,
        value_start=value_at(0),
        value_end=value_at(23),
        traded_value=sum(v for _, _, v, _, _ in TRADES),
        trades_after_noon=sum(1 for h, *_ in TRADES if h >= 12),
        refusals_after_noon=sum(len(rs) for h, _, rs in REFUSALS if h >= 12),
    )
