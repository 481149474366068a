"""Read the audit log back into a `BehaviourReport`.

The chain is verified first. A broken chain does not stop the report (a person needs to
see what is there) but the report says so loudly and the CLI exits 1. Every payload is
untrusted input: unknown shapes are counted and skipped, never fatal.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from defiagent.errors import ConfigError
from defiagent.monitoring.audit_log import verify_audit_log
from defiagent.monitoring.events import RISK, TRADE, RiskEvent, TradeEvent
from defiagent.reporting.models import (
    AlertRow,
    BehaviourReport,
    ChainCheck,
    DriftSection,
    ExposurePoint,
    FailureRow,
    KillSwitchRow,
    LimitRow,
    ReasonCount,
    RefusalRow,
    Summary,
    TradeRow,
    ValuePoint,
)
from defiagent.risk.drift import scan
from defiagent.state_crypto.files import is_sealed_payload, open_payload
from defiagent.strategy.mandate import Mandate

AUDIT_FILE = "audit.jsonl"  # the name defiagent.agent.runtime.AUDIT_FILE gives it


def parse_since(value: str) -> datetime:
    """An ISO date (midnight UTC) or datetime (UTC unless it names its offset)."""
    text = value.strip()
    try:
        if len(text) == 10:
            d = date.fromisoformat(text)
            return datetime(d.year, d.month, d.day, tzinfo=UTC)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(
            f"--since {value!r} is not an ISO date or datetime (e.g. 2025-06-01 or "
            "2025-06-01T12:00:00+00:00)"
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _when(record: dict[str, Any]) -> datetime | None:
    ts = record.get("ts")
    if not isinstance(ts, str):
        return None
    try:
        moment = datetime.fromisoformat(ts)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def read_records(path: Path) -> tuple[list[tuple[datetime, dict[str, Any]]], int]:
    """(time, record) for every line that parses as a record, and the count that did not."""
    out: list[tuple[datetime, dict[str, Any]]] = []
    bad = 0
    with open(path, "rb") as fh:
        for raw in fh:
            try:
                record = json.loads(raw)
            except ValueError:
                bad += 1
                continue
            if not isinstance(record, dict) or not isinstance(record.get("payload"), dict):
                bad += 1
                continue
            if is_sealed_payload(record["payload"]):  # an encrypted state dir (state_crypto)
                record["payload"] = open_payload(path.parent, record)
            moment = _when(record)
            if moment is None:
                bad += 1
                continue
            out.append((moment, record))
    return out, bad


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _str(value: Any) -> str:
    return "" if value is None else str(value)


def _float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _mandate_from_start(payload: dict[str, Any]) -> Any:
    config = payload.get("config")
    strategy = config.get("strategy") if isinstance(config, dict) else None
    return strategy.get("mandate") if isinstance(strategy, dict) else None


class _Labels:
    """Token addresses to the names the allowlist gives them (from the start records)."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def add(self, allowlist: Any) -> None:
        if isinstance(allowlist, dict):
            for address, name in allowlist.items():
                self.names[str(address).lower()] = str(name)

    def __call__(self, address: str | None) -> str:
        if not address:
            return ""
        name = self.names.get(address.lower())
        if name:
            return name
        return f"{address[:6]}…{address[-4:]}" if len(address) > 12 else address


def build_report(
    path: Path | str,
    *,
    since: datetime | None = None,
    mandate: Mandate | None = None,
    mandate_source: str | None = None,
    now: datetime | None = None,
) -> BehaviourReport:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"the audit log {path} does not exist (is the state dir right?)")
    verified = verify_audit_log(path)
    chain = ChainCheck(
        ok=verified.ok,
        records=verified.records,
        problem_line=verified.problem.line if verified.problem else None,
        problem=verified.problem.reason if verified.problem else None,
    )
    records, unreadable = read_records(path)

    labels = _Labels()
    agent: str | None = None
    strategies: list[str] = []
    log_mandate: Any = None
    intent_strategy: dict[str, str] = {}
    for _, rec in records:  # context from the whole log, also before --since
        payload = rec["payload"]
        if rec.get("kind") == "start":
            agent = _str(payload.get("agent")) or agent
            labels.add(payload.get("allowlist"))
            config = payload.get("config")
            name = config.get("strategy", {}).get("name") if isinstance(config, dict) else None
            if isinstance(name, str) and name not in strategies:
                strategies.append(name)
            found = _mandate_from_start(payload)
            if found is not None:
                log_mandate = found
        elif rec.get("kind") == "intent":
            intent = payload.get("intent")
            if isinstance(intent, dict) and intent.get("id") is not None:
                intent_strategy[str(intent["id"])] = _str(payload.get("strategy"))

    period = [(m, r) for m, r in records if since is None or m >= since]
    kinds = Counter(_str(r.get("kind")) for _, r in period)

    trades: list[TradeRow] = []
    trade_events: list[TradeEvent] = []
    refusals: list[RefusalRow] = []
    risk_points: list[ValuePoint] = []
    snapshot_points: list[ValuePoint] = []
    exposure: list[ExposurePoint] = []
    limits_latest: dict[str, tuple[float, float, float]] = {}
    limits_max: dict[str, tuple[float, str]] = {}
    paused: dict[str, str] = {}
    alerts: list[AlertRow] = []
    switches: list[KillSwitchRow] = []
    failures: list[FailureRow] = []
    malformed = 0
    refused_intents = 0

    for moment, rec in period:
        kind, payload, time = rec.get("kind"), rec["payload"], _iso(moment)
        ts = moment.timestamp()
        if kind == TRADE:
            try:
                event = TradeEvent.model_validate(payload)
            except ValidationError:
                malformed += 1
                continue
            trade_events.append(event)
            trades.append(
                TradeRow(
                    time=time,
                    trade=event,
                    token_in_label=labels(event.token_in),
                    token_out_label=labels(event.token_out),
                )
            )
        elif kind == "refused":
            intent_id = _str(payload.get("intent_id"))
            items = payload.get("refusals")
            refused_intents += 1
            for item in items if isinstance(items, list) else []:
                if not isinstance(item, dict):
                    continue
                refusals.append(
                    RefusalRow(
                        time=time,
                        intent_id=intent_id,
                        strategy=intent_strategy.get(intent_id, ""),
                        stage=_str(payload.get("stage")),
                        rule=_str(item.get("rule")) or "(unnamed)",
                        reason=_str(item.get("reason")),
                    )
                )
        elif kind == RISK:
            try:
                risk = RiskEvent.model_validate(payload)
            except ValidationError:
                malformed += 1
                continue
            risk_points.append(
                ValuePoint(
                    time=time,
                    ts=ts,
                    value=risk.portfolio_value,
                    pnl=risk.pnl,
                    drawdown_pct=risk.drawdown_pct,
                )
            )
            exposure.append(ExposurePoint(time=time, ts=ts, exposure=dict(risk.exposure)))
            for usage in risk.limits:
                limits_latest[usage.rule] = (usage.used, usage.limit, usage.ratio)
                best = limits_max.get(usage.rule)
                if best is None or usage.ratio > best[0]:
                    limits_max[usage.rule] = (usage.ratio, time)
            paused = dict(risk.paused)
        elif kind == "snapshot":
            value = _float(payload.get("portfolio_value"))
            if value is not None:
                snapshot_points.append(ValuePoint(time=time, ts=ts, value=value, source="snapshot"))
        elif kind == "alert":
            alerts.append(
                AlertRow(
                    time=time,
                    kind=_str(payload.get("kind")),
                    severity=_str(payload.get("severity")),
                    title=_str(payload.get("title")),
                    detail=_str(payload.get("detail")),
                    strategy=_str(payload.get("strategy")),
                )
            )
        elif kind == "kill-switch":
            switches.append(
                KillSwitchRow(
                    time=time,
                    on=payload.get("on") is True,
                    reason=_str(payload.get("reason")),
                    changed_by=_str(payload.get("changed_by")),
                )
            )
        elif kind == "failed":
            failures.append(
                FailureRow(
                    time=time,
                    intent_id=_str(payload.get("intent_id")),
                    reason=_str(payload.get("reason")),
                )
            )

    values = risk_points or snapshot_points
    if not risk_points and snapshot_points:
        # No risk records: PnL against the period's first valued snapshot.
        first = snapshot_points[0].value or 0.0
        peak = first
        points = []
        for p in snapshot_points:
            v = p.value or 0.0
            peak = max(peak, v)
            dd = (peak - v) / peak * 100 if peak else None
            points.append(p.model_copy(update={"pnl": v - first, "drawdown_pct": dd}))
        values = points
    valued = [p.value for p in values if p.value is not None]

    closed = [t.realized_pnl for t in trade_events if t.realized_pnl is not None]
    slips = [t.slippage_bps for t in trade_events if t.slippage_bps is not None]
    drawdowns = [p.drawdown_pct for p in values if p.drawdown_pct is not None]
    pnls = [p.pnl for p in values if p.pnl is not None]
    summary = Summary(
        records=len(period),
        unreadable_lines=unreadable + malformed,
        runs=kinds.get("start", 0),
        ticks_skipped=kinds.get("tick-skipped", 0),
        intents=kinds.get("intent", 0),
        executed=kinds.get("executed", 0),
        failed=kinds.get("failed", 0),
        refused_intents=refused_intents,
        refusals=len(refusals),
        trades=len(trade_events),
        traded_value=sum(t.value_in or 0.0 for t in trade_events),
        realized_pnl=sum(closed),
        closed_trades=len(closed),
        winning_trades=sum(1 for p in closed if p > 0),
        win_rate=(sum(1 for p in closed if p > 0) / len(closed)) if closed else None,
        mean_slippage_bps=(sum(slips) / len(slips)) if slips else None,
        gas_cost_value=sum(t.gas_cost_value or 0.0 for t in trade_events),
        value_start=valued[0] if valued else None,
        value_end=valued[-1] if valued else None,
        value_change=(valued[-1] - valued[0]) if valued else None,
        pnl_end=pnls[-1] if pnls else None,
        max_drawdown_pct=max(drawdowns) if drawdowns else None,
        alerts=len(alerts),
        kill_switch_on=switches[-1].on if switches else None,
    )

    by_rule = Counter(r.rule for r in refusals)
    by_reason = Counter((r.rule, r.reason) for r in refusals)
    limits = [
        LimitRow(
            rule=rule,
            used=used,
            limit=limit,
            ratio=ratio,
            max_ratio=limits_max[rule][0],
            max_at=limits_max[rule][1],
        )
        for rule, (used, limit, ratio) in sorted(limits_latest.items())
    ]

    start_moment = since if since is not None else (period[0][0] if period else None)
    end_moment = period[-1][0] if period else None
    drift = _drift(trade_events, mandate, mandate_source, log_mandate, start_moment, end_moment)

    return BehaviourReport(
        source=str(path),
        generated_at=_iso(now or datetime.now(UTC)),
        since=_iso(since) if since else None,
        period_start=_iso(start_moment) if start_moment else None,
        period_end=_iso(end_moment) if end_moment else None,
        agent=agent,
        strategies=sorted({*strategies, *(t.strategy for t in trade_events)}),
        chain=chain,
        summary=summary,
        kinds=dict(sorted(kinds.items())),
        trades=trades,
        refusals=refusals,
        refusals_by_rule=dict(by_rule.most_common()),
        refusals_by_reason=[
            ReasonCount(rule=rule, reason=reason, count=n)
            for (rule, reason), n in by_reason.most_common()
        ],
        value_series=values,
        exposure_series=exposure,
        limits=limits,
        paused=paused,
        alerts=alerts,
        kill_switch=switches,
        failures=failures,
        drift=drift,
    )


def _drift(
    trades: list[TradeEvent],
    mandate: Mandate | None,
    source: str | None,
    from_log: Any,
    start: datetime | None,
    end: datetime | None,
) -> DriftSection:
    error = None
    if mandate is None and from_log is not None:
        try:
            mandate = Mandate.from_dict(from_log, source="the start record's strategy.mandate")
            source = "config"
        except ConfigError as exc:
            error = str(exc)
    if mandate is None:
        return DriftSection(error=error)
    if start is None or end is None:
        return DriftSection(mandate=mandate, source=source)
    findings = scan(trades, mandate, start=start.timestamp(), end=end.timestamp())
    return DriftSection(mandate=mandate, source=source, findings=findings)
