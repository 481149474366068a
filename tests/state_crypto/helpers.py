"""State files with recognisable contents, written through their real layers."""

from __future__ import annotations

from pathlib import Path

from defiagent.agent.state import SpendLedger
from defiagent.execution.journal import Attempt, AttemptKind, Journal
from defiagent.execution.models import PlannedCall
from defiagent.monitoring.audit_log import AuditLog
from defiagent.monitoring.events import TradeEvent
from defiagent.operator.enrolment import EnrolmentStore, new_enrolment
from defiagent.risk.pnl import PortfolioHistory
from defiagent.risk.trades import TradeLedger

SENDER = "0x" + "ab" * 20
TARGET = "0x" + "cd" * 20
CALLDATA = "0x38ed1739" + "00" * 31 + "2a"
RAW_TX = "0x02f8" + "be" * 60
TOTP_NAME = "alice@example.org"
MARKERS = ("momentum-strategy", SENDER[2:], CALLDATA[2:], RAW_TX[2:], TOTP_NAME, "audited-secret")


def planned_call(intent: str = "intent-1") -> PlannedCall:
    return PlannedCall(
        intent_id=intent, intent_kind="swap", target=TARGET, data=CALLDATA, sender=SENDER
    )


def write_everything(state_dir: Path) -> dict:
    """One value in each sensitive file; returns what was written, to compare on read."""
    trade = TradeEvent(
        at=100.0,
        strategy="momentum-strategy",
        intent_id="intent-1",
        kind="swap",
        amount_in=5,
        amount_out=7,
    )
    TradeLedger(state_dir / "trades.jsonl").add(trade)
    SpendLedger(10**9, state_dir / "spend.jsonl").add(100.0, 12.5)
    PortfolioHistory(path=state_dir / "portfolio.jsonl").record(100.0, 1000.0)
    enrolment = new_enrolment(TOTP_NAME)
    EnrolmentStore(state_dir).save(enrolment)
    call = planned_call()
    with Journal(state_dir / "journal.sqlite") as journal:
        journal.plan(call, 1)
        journal.add_attempt(
            Attempt(
                key=call.journal_key,
                seq=0,
                kind=AttemptKind.ORIGINAL,
                tx_hash="0x" + "11" * 32,
                raw=RAW_TX,
                nonce=0,
                gas=21000,
                max_fee_per_gas=2,
                max_priority_fee_per_gas=1,
            )
        )
    with AuditLog(state_dir / "audit.jsonl") as audit:
        audit.record("note", {"what": "audited-secret"})
    return {"trade": trade, "enrolment": enrolment, "call": call}


def read_everything(state_dir: Path) -> dict:
    with Journal(state_dir / "journal.sqlite") as journal:
        entry = journal.get(planned_call().journal_key)
        attempts = journal.attempts(planned_call().journal_key)
    return {
        "trades": TradeLedger(state_dir / "trades.jsonl").trades,
        "spent": SpendLedger(10**9, state_dir / "spend.jsonl").spent(101.0),
        "portfolio": list(PortfolioHistory(path=state_dir / "portfolio.jsonl").points),
        "enrolment": EnrolmentStore(state_dir).load(),
        "call": entry.call if entry else None,
        "raw": [a.raw for a in attempts],
    }


def raw_bytes(state_dir: Path) -> bytes:
    """Every byte in the state dir's files (sqlite's WAL included)."""
    return b"".join(p.read_bytes() for p in sorted(state_dir.rglob("*")) if p.is_file())
