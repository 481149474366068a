"""How the agent's tick reports look to a person: one line per intent, a summary table."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from defiagent.agent.reports import IntentReport, TickReport

STATUS_STYLE = {"executed": "green", "refused": "yellow", "failed": "red"}


def intent_line(i: IntentReport) -> str:
    style = STATUS_STYLE[i.status]
    what = escape("; ".join(i.plan) if i.plan else i.kind)
    if i.status == "executed":
        tail = f"tx {i.tx_hashes[-1][:12]}…" if i.tx_hashes else ""
        return f"[{style}]executed[/] {what} {tail}"
    first = i.refusals[0] if i.refusals else None
    reason = f"[bold]{first.rule}[/]: {escape(first.reason)}" if first else ""
    more = f" (+{len(i.refusals) - 1} more)" if len(i.refusals) > 1 else ""
    return f"[{style}]{i.status}[/] at {i.stage}: {what} -> {reason}{more}"


def print_tick(console: Console, t: TickReport, *, flood_threshold: int = 6) -> None:
    if t.skipped:
        console.print(f"tick {t.tick}: [yellow]skipped[/] ({escape(t.skipped)})")
        return
    prices = ", ".join(f"{k} {v:,.4f}" for k, v in t.spot_prices.items())
    value = f"{t.portfolio_value:,.2f}" if t.portfolio_value is not None else "?"
    console.print(
        f"[bold]tick {t.tick}[/] block {t.block}  value {value}  {prices}", highlight=False
    )
    by_rule: Counter[str] = Counter()
    shown = 0
    for i in t.intents:
        if i.status == "refused" and shown >= flood_threshold:
            by_rule[i.first_rule or "?"] += 1
            continue
        shown += 1
        console.print(f"  {escape(i.strategy)}: {intent_line(i)}", highlight=False, soft_wrap=True)
    for rule, n in by_rule.items():
        console.print(f"  … and {n} more refused, first by [bold]{rule}[/]", highlight=False)
    for name, why in t.paused.items():  # the cause, where the pause is shown
        console.print(f"  [yellow]{escape(name)} paused[/]: {escape(why)}", highlight=False)


def summary_table(ticks: Sequence[TickReport], title: str = "summary") -> Table:
    table = Table(title=title)
    for col in ("strategy", "executed", "refused", "failed", "refused by (rule: count)"):
        table.add_column(col, overflow="fold")
    per: dict[str, Counter] = {}
    rules: dict[str, Counter] = {}
    for t in ticks:
        for i in t.intents:
            per.setdefault(i.strategy, Counter())[i.status] += 1
            for r in i.refusals:
                rules.setdefault(i.strategy, Counter())[r.rule] += 1
    for strategy, counts in per.items():
        table.add_row(
            strategy,
            str(counts["executed"]),
            str(counts["refused"]),
            str(counts["failed"]),
            ", ".join(f"{r}: {n}" for r, n in rules.get(strategy, Counter()).most_common()),
        )
    return table


def totals(ticks: Sequence[TickReport]) -> dict[str, int]:
    c = Counter(i.status for t in ticks for i in t.intents)
    return {
        "ticks": len(ticks),
        "intents": sum(c.values()),
        "executed": c["executed"],
        "refused": c["refused"],
        "failed": c["failed"],
        "transactions": sum(len(i.tx_hashes) for t in ticks for i in t.intents),
    }
