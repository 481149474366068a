"""The limits the operator approved, and which current limits are looser than them.

`state_dir/limits-approved.json` holds the effective `[guard]` and `[risk]` sections (and
per-strategy `risk` overrides, when the config has them) as the operator approved them,
sealed with an HMAC keyed by the operator's TOTP secret: an edit of the file by hand, or a
file from an earlier enrolment, does not pass.

Looser is judged by field name, the same way for every rule, present or future:
`max_*`, `*_max`, `*_cap`, `*_pct`, `*_bps`, `*_value`, `*_limit`, `*_gwei`, `*_wei`
higher is looser (no value means no cap); `min_*`, `*_min` lower is looser; `enabled`
true to false is looser; a list named `allowed_*`/`*_allowlist` may lose items and a
`blocked_*`/`denied_*` list may gain items. Anything else that changed, a field that is
new or gone, counts as looser: fail closed. A rule section that is new counts as tighter
(a rule can only refuse more). Tightening never needs a code.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from defiagent.errors import Refused
from defiagent.monitoring.interfaces import AuditSink
from defiagent.operator.enrolment import Enrolment, EnrolmentStore
from defiagent.operator.files import read_private_json, write_private_json

FILENAME = "limits-approved.json"
WHAT = "approved-limits file"
AUDIT_KIND = "operator-limits"
APPROVE_HINT = "`defiagent operator approve-limits -c agent.toml`"

_UP_SUFFIXES = ("_max", "_cap", "_pct", "_bps", "_value", "_limit", "_gwei", "_wei")
_WIDEN_LISTS = ("allowed_", "_allowed", "allowlist", "whitelist")
_NARROW_LISTS = ("blocked_", "denied_", "deny", "blocklist", "blacklist", "banned_")


# ------------------------------------------------------------------ what the limits are


def _dump(model: Any) -> Any:
    if model is None:
        return None
    if isinstance(model, BaseModel):
        return model.model_dump(mode="json")
    if isinstance(model, Mapping):
        return json.loads(json.dumps(dict(model), default=str))
    return model


def _merged(base: Any, override: Any) -> Any:
    if isinstance(base, Mapping) and isinstance(override, Mapping):
        return {
            k: _merged(base.get(k), override[k]) if k in override else v for k, v in base.items()
        } | {k: v for k, v in override.items() if k not in base}
    return override


def _strategy_overrides(cfg: Any) -> dict[str, Any]:
    """name -> that strategy's effective risk section, or None when it has no override.

    Uses the config's own `strategy_configs()`/`risk_for()` when it has them; otherwise
    (duck typing) a `strategies` list or table whose items carry a `risk` model or a
    partial table, laid over the global `[risk]` section.
    """
    if callable(getattr(cfg, "strategy_configs", None)) and callable(
        getattr(cfg, "risk_for", None)
    ):
        out: dict[str, Any] = {}
        for i, sc in enumerate(cfg.strategy_configs()):
            name = str(getattr(sc, "name", None) or i)
            key = name if name not in out else f"{name}#{i}"
            out[key] = _dump(cfg.risk_for(sc)) if getattr(sc, "risk", None) else None
        return out
    strategies = getattr(cfg, "strategies", None)
    if not strategies:
        return {}
    if isinstance(strategies, Mapping):
        items = [(str(k), v) for k, v in strategies.items()]
    else:
        items = [
            (str((s.get("name") if isinstance(s, Mapping) else getattr(s, "name", None)) or i), s)
            for i, s in enumerate(strategies)
        ]
    base = _dump(cfg.risk)
    out = {}
    for i, (name, strategy) in enumerate(items):
        key = name if name not in out else f"{name}#{i}"
        risk = (
            strategy.get("risk")
            if isinstance(strategy, Mapping)
            else getattr(strategy, "risk", None)
        )
        out[key] = _merged(base, _dump(risk)) if risk else None
    return out


def current_limits(cfg: Any) -> dict[str, Any]:
    """The effective limits of a config: guard, risk, per-strategy risk overrides."""
    limits: dict[str, Any] = {"guard": _dump(cfg.guard), "risk": _dump(cfg.risk)}
    overrides = _strategy_overrides(cfg)
    if overrides:
        limits["strategies"] = overrides
    return limits


# ------------------------------------------------------------------ looser or tighter


@dataclass(frozen=True)
class LimitChange:
    path: str
    old: Any
    new: Any
    verb: str  # raised, lowered, disabled, changed, removed, added

    def sentence(self) -> str:
        if self.verb == "added":
            return f"limit {self.path} was added with {_fmt(self.new)}"
        if self.verb == "removed":
            return f"limit {self.path} (was {_fmt(self.old)}) is gone"
        return f"limit {self.path} {self.verb} from {_fmt(self.old)} to {_fmt(self.new)}"


def _fmt(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, str | int | float | bool):
        return str(value)
    return json.dumps(value, sort_keys=True, default=str)


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float | str):
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            return None
        return number if number.is_finite() else None
    return None


def direction(name: str) -> str | None:
    """ "up" when a higher value is looser, "down" when a lower one is, None when unknown."""
    name = name.lower()
    if name.startswith("min_") or name.endswith("_min") or name == "min":
        return "down"
    if name.startswith("max_") or name.endswith(_UP_SUFFIXES) or name in ("max", "cap", "limit"):
        return "up"
    return None


def _key(item: Any) -> str:
    return json.dumps(item, sort_keys=True, default=str)


def _judge(path: str, old: Any, new: Any) -> LimitChange | None:
    """The change as a looser one, or None when it only tightens."""
    name = path.rsplit(".", 1)[-1].lower()
    if isinstance(old, bool) or isinstance(new, bool):
        if name == "enabled" and old is True and new is False:
            return LimitChange(path, old, new, "disabled")
        if name == "enabled" and old is False and new is True:
            return None
        return LimitChange(path, old, new, "changed")
    way = direction(name)
    a, b = _number(old), _number(new)
    numeric = (a is not None or old is None) and (b is not None or new is None)
    if way and numeric:
        if b is None:  # no value: no cap, no minimum
            return LimitChange(path, old, new, "raised" if way == "up" else "lowered")
        if a is None:
            return None  # a cap or minimum where there was none
        if way == "up":
            return LimitChange(path, old, new, "raised") if b > a else None
        return LimitChange(path, old, new, "lowered") if b < a else None
    if isinstance(old, list) and isinstance(new, list):
        before, after = {_key(x) for x in old}, {_key(x) for x in new}
        if any(w in name for w in _WIDEN_LISTS) and after <= before:
            return None
        if any(w in name for w in _NARROW_LISTS) and after >= before:
            return None
    return LimitChange(path, old, new, "changed")


def _same(old: Any, new: Any) -> bool:
    if isinstance(old, bool) or isinstance(new, bool):
        return old is new
    a, b = _number(old), _number(new)
    if a is not None and b is not None and not isinstance(old, str) and not isinstance(new, str):
        return a == b
    return _key(old) == _key(new)


def looser_changes(approved: Any, current: Any, prefix: str = "") -> list[LimitChange]:
    """Every way `current` is looser than `approved`, walking both trees."""
    if not isinstance(approved, Mapping) or not isinstance(current, Mapping):
        if _same(approved, current):
            return []
        change = _judge(prefix, approved, current)
        return [change] if change else []
    changes: list[LimitChange] = []
    for key, old in approved.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in current:
            changes.append(LimitChange(path, old, None, "removed"))
            continue
        changes += looser_changes(old, current[key], path)
    for key, new in current.items():
        if key in approved:
            continue
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(new, Mapping):
            continue  # a new rule section: it can only refuse more
        changes.append(LimitChange(path, None, new, "added"))
    return changes


def compare_limits(approved: Mapping[str, Any], current: Mapping[str, Any]) -> list[LimitChange]:
    """Looser changes of guard, risk and each strategy's effective risk.

    A strategy without an override runs under the global risk section, so its effective
    limits are compared: an override approved before and removed since falls back to the
    current global section, which may be looser than the override was.
    """
    changes = looser_changes(
        {k: approved.get(k) for k in ("guard", "risk")},
        {k: current.get(k) for k in ("guard", "risk")},
    )
    approved_overrides = approved.get("strategies") or {}
    for name, override in (current.get("strategies") or {}).items():
        old = approved_overrides.get(name) or approved.get("risk")
        new = override or current.get("risk")
        if not approved_overrides.get(name) and not override:
            continue  # global against global: compared above
        changes += looser_changes(old, new, f"strategies.{name}.risk")
    return changes


# ------------------------------------------------------------------ the approved snapshot


def _seal(enrolment: Enrolment, limits: Mapping[str, Any]) -> str:
    body = json.dumps(limits, sort_keys=True, separators=(",", ":"), default=str).encode()
    key = enrolment.totp().byte_secret()
    return hmac.new(key, b"defiagent-approved-limits-v1\n" + body, hashlib.sha256).hexdigest()


class LimitsStore:
    def __init__(self, state_dir: Path | str) -> None:
        self.path = Path(state_dir) / FILENAME

    def load(self, enrolment: Enrolment) -> dict[str, Any] | None:
        """The approved limits, or None when none were approved. Refused when not sealed."""
        data = read_private_json(self.path, WHAT, forbidden=0o022)
        if data is None:
            return None
        limits = data.get("limits") if isinstance(data, dict) else None
        seal = data.get("seal") if isinstance(data, dict) else None
        if not isinstance(limits, dict) or not isinstance(seal, str):
            raise Refused(f"the {WHAT} {self.path} is not an approved-limits snapshot")
        if not hmac.compare_digest(seal, _seal(enrolment, limits)):
            raise Refused(
                f"the {WHAT} {self.path} does not carry the operator's seal (edited by hand, "
                f"or approved under an earlier enrolment); approve the limits with {APPROVE_HINT}"
            )
        return limits

    def save(self, enrolment: Enrolment, limits: Mapping[str, Any]) -> None:
        write_private_json(
            self.path,
            {
                "version": 1,
                "approved_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "limits": dict(limits),
                "seal": _seal(enrolment, limits),
            },
        )

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)


def _digest(limits: Mapping[str, Any]) -> str:
    body = json.dumps(limits, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(body).hexdigest()


def approve_limits(
    cfg: Any, state_dir: Path | str, enrolment: Enrolment, audit: AuditSink | None = None
) -> list[LimitChange]:
    """Store the config's limits as approved (call after the operator's code was accepted).

    Returns the looser changes this approval accepts (empty on a first approval).
    """
    store = LimitsStore(state_dir)
    limits = current_limits(cfg)
    try:
        previous = store.load(enrolment)
    except Refused:
        previous = None  # unsealed or unreadable: replaced by this approval
    accepted = compare_limits(previous, limits) if previous is not None else []
    store.save(enrolment, limits)
    if audit is not None:
        audit.record(
            AUDIT_KIND,
            {
                "outcome": "approved",
                "limits_sha256": _digest(limits),
                "first_approval": previous is None,
                "looser_than_before": [c.sentence() for c in accepted],
            },
        )
    return accepted


def require_approved_limits(cfg: Any, state_dir: Path | str, audit: AuditSink | None) -> None:
    """Refuse to start with limits looser than the operator approved.

    No operator enrolled: nothing is checked or recorded. Enrolled but no approval on
    record: refused too (fail closed); `operator enroll -c` or `operator approve-limits`
    makes the first approval.
    """
    store = EnrolmentStore(state_dir)
    if not store.exists():
        return

    def refuse(message: str, **extra: Any) -> Refused:
        if audit is not None:
            audit.record(AUDIT_KIND, {"outcome": "refused", "reason": message, **extra})
        return Refused(message)

    try:
        enrolment = store.load()
        approved = LimitsStore(state_dir).load(enrolment) if enrolment else None
    except Refused as exc:
        raise refuse(str(exc)) from exc
    if approved is None:
        raise refuse(
            "an operator is enrolled but has not approved the limits; approve them with "
            f"{APPROVE_HINT}"
        )
    limits = current_limits(cfg)
    changes = compare_limits(approved, limits)
    if changes:
        more = f" (and {len(changes) - 1} more)" if len(changes) > 1 else ""
        raise refuse(
            f"{changes[0].sentence()}{more} since the operator approved the limits; "
            f"approve it with {APPROVE_HINT}",
            changes=[c.sentence() for c in changes],
        )
    if audit is not None:
        audit.record(AUDIT_KIND, {"outcome": "within-approved", "limits_sha256": _digest(limits)})


def reseal(state_dir: Path | str, old: Enrolment, new: Enrolment) -> bool:
    """Carry the approved limits over to a new enrolment (after the old code was accepted).

    Returns False when there was nothing sealed under the old enrolment to carry over.
    """
    store = LimitsStore(state_dir)
    try:
        limits = store.load(old)
    except Refused:
        limits = None
    if limits is None:
        store.delete()
        return False
    store.save(new, limits)
    return True
